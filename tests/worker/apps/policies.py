"""Three apps, one per ``on_error`` policy, each over its own ``jobs`` topic (JSON ints):
a negative number makes the agent raise; the others are written to ``done`` as text.

Run one with ``policies.py:restart_app``, ``policies.py:dlq_app`` or
``policies.py:crash_app`` (naming the module alone is an error: it holds three Apps).
"""

from streamlog import App

SETTINGS = dict(topic_partitions=1, broker_commit_interval=0.2, shutdown_timeout=5.0)

restart_app = App("policy-restart", **SETTINGS)
dlq_app = App("policy-dlq", **SETTINGS)
crash_app = App("policy-crash", **SETTINGS)


def _declare(app: App, on_error: str | None) -> None:
    jobs = app.topic("jobs", value_type=int)
    done = app.topic("done", value_type=str, value_serializer="raw")

    @app.agent(jobs, sink=[done], on_error=on_error, name="work")
    async def work(stream):
        """Doubles each job; negative jobs fail."""
        async for n in stream:
            if n < 0:
                raise ValueError(f"negative job {n}")
            yield str(2 * n)


_declare(restart_app, "restart")
_declare(dlq_app, "dlq")
_declare(crash_app, None)  # the default policy: crash
