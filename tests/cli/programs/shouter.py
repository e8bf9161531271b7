"""Upper-cases each line of ``lines`` into ``shouts``: a Faust program ported with the one
import line, started the Faust way (``python shouter.py worker -l info``)."""

import streamlog as faust
from streamlog.cli import argument, option

app = faust.App("shouter", topic_partitions=2)

lines = app.topic("lines", value_type=str)
shouts = app.topic("shouts", value_type=str)


@app.agent(lines, sink=[shouts])
async def shout(stream):
    """Shouts every line."""
    async for line in stream:
        yield line.upper()


@app.command(
    option("--n", type=int, default=1, help="How many lines to send."),
    argument("text"),
)
async def produce(self, n: int, text: str) -> None:
    """Send TEXT to lines, N times."""
    for i in range(n):
        await lines.send(value=f"{text} {i}")
    self.say(f"sent {n} line(s)")


@app.command(argument("text"))
async def ask(self, text: str) -> None:
    """Ask the shout agent for TEXT shouted (request/reply through the running worker)."""
    print(await shout.ask(value=text))


if __name__ == "__main__":
    app.main()
