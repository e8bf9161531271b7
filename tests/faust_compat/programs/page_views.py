"""Page views per page: written as Faust's page-views tutorial writes it (``import faust``,
a Record, group_by, a Table and a table_route view) and run unchanged by streamlog."""

import faust


class PageView(faust.Record):
    id: str
    user: str


app = faust.App("page-views", topic_partitions=4)

page_view_topic = app.topic("page_views", value_type=PageView)

page_views = app.Table("page_views", default=int)


@app.agent(page_view_topic)
async def count_page_views(views):
    async for view in views.group_by(PageView.id):
        page_views[view.id] += 1


@app.page("/count/{page}/")
@app.table_route(table=page_views, match_info="page")
async def get_count(web, request, page):
    return web.json({"page": page, "count": page_views[page]})
