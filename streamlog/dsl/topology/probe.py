"""Probing an agent's function, without starting anything: which ``group_by``/``through``
it calls (see ``graph.py``'s docstring; what its code refers to is ``references.py``).

The function is run once against a *probe* stream whose owner records the operators
called, and whose first read stops the function (``_ProbeStop``, a ``BaseException`` so
that ``except Exception`` in user code does not swallow it) before any event.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamlog.dsl.agents.agent import Agent
from streamlog.dsl.agents.stream import Stream
from streamlog.dsl.agents.topics import Channel, Topic
from streamlog.dsl.runtime.clock import SystemAsyncClock
from streamlog.dsl.runtime.inbox import Cursor, Inbox

if TYPE_CHECKING:
    from streamlog.dsl.runtime.acks import Batch
    from streamlog.dsl.runtime.barrier import ProcessingBarrier
    from streamlog.dsl.runtime.meters import AgentMeter

__all__ = ["ProbeResult", "probe_agent"]


class _ProbeStop(BaseException):
    """Raised by a probe stream's first read: the function reached its ``async for``."""


class _ProbeInbox(Inbox):
    __slots__ = ()

    async def get(self) -> Batch | None:
        raise _ProbeStop()


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What running an agent's function up to its first read found.

    ``forwards``: the ``group_by``/``through`` calls in order, as (label, target), label
    ``group_by(<name>)`` or ``through``. ``reached``: the function got to its first read;
    otherwise ``note`` says why it stopped.
    """

    forwards: tuple[tuple[str, Topic | Channel], ...]
    reached: bool
    note: str | None = None


class _ProbeOwner:
    """A ``StreamOwner`` that records ``group_by``/``through`` and declares nothing."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.clock = agent.app.clock or SystemAsyncClock()
        self.barrier: ProcessingBarrier | None = None
        self.meter: AgentMeter | None = None  # a probe counts nothing
        self.forwards: list[tuple[str, Topic | Channel]] = []

    async def on_decode_error(self, batch: Batch, index: int, exc: Exception) -> None:
        raise AssertionError("a probe stream reads no record")  # pragma: no cover

    def repartition_target(self, source: Stream, name: str, partitions: int | None) -> Topic:
        # The name ActorContext.repartition_target gives it, without declaring the topic.
        app = self.agent.app
        base = source.source
        return Topic(
            app,
            f"{app.conf.id}-{self.agent.short_name}-{name}-repartition",
            key_serializer="json",
            partitions=partitions or (base.partitions if isinstance(base, Topic) else None),
            internal=True,
        )

    def forward(
        self,
        source: Stream,
        target: Any,
        *,
        label: str,
        key: Callable[[Any], Any] | None,
    ) -> Stream:
        if isinstance(target, str):
            target = self.agent.app.topics.get(target) or Topic(self.agent.app, target)
        if isinstance(target, Topic | Channel):
            edge = label if label.startswith("group_by(") else "through"
            self.forwards.append((edge, target))
        return Stream(Cursor(_ProbeInbox(label)), self, source=target)

    async def send_to(self, channel: Any, key: Any, value: Any) -> None:
        raise AssertionError("a probe stream reads no record")  # pragma: no cover


def probe_agent(agent: Agent, *, max_steps: int = 1000) -> ProbeResult:
    """Run ``agent``'s function up to its first read, without an event loop or a log."""
    owner = _ProbeOwner(agent)
    stream: Stream[Any] = Stream(Cursor(_ProbeInbox(agent.name)), owner, source=agent.channel)
    try:
        result = agent.fun(stream)
    except Exception as exc:  # noqa: BLE001 - user code: report, do not fail the topology
        return ProbeResult((), False, f"calling it raised {type(exc).__name__}: {exc}")
    if inspect.isasyncgen(result):
        gen: Any = result
        note = _drive(gen.asend(None), max_steps)
        _close_asyncgen(gen)
    elif inspect.iscoroutine(result):
        note = _drive(result, max_steps)
    else:
        close = getattr(result, "close", None)
        if inspect.isawaitable(result) and close is not None:
            close()
        note = "not an async function or async generator"
    return ProbeResult(tuple(owner.forwards), note is None, note)


def _drive(awaitable: Any, max_steps: int) -> str | None:
    """Step ``awaitable`` by hand; None when it reached its first read."""
    try:
        for _ in range(max_steps):
            yielded = awaitable.send(None)
            if yielded is not None:  # a real future: it needs a running app and loop
                if hasattr(yielded, "cancel"):
                    yielded.cancel()
                return "stopped before its first read: it awaits something that needs the app"
        return f"stopped before its first read: still running after {max_steps} steps"
    except _ProbeStop:
        return None
    except StopIteration:
        return "returned without reading its stream"
    except StopAsyncIteration:
        return "returned without reading its stream"
    except Exception as exc:  # noqa: BLE001 - user code: report, do not fail the topology
        return f"stopped before its first read: {type(exc).__name__}: {exc}"
    finally:
        awaitable.close()


def _close_asyncgen(gen: Any) -> None:
    closing = gen.aclose()
    try:
        closing.send(None)
    except (StopIteration, RuntimeError, _ProbeStop):
        pass
    except Exception:  # noqa: BLE001, S110 - its finally blocks failing is no topology fact
        pass
    finally:
        closing.close()
