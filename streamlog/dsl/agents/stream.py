"""``Stream``: what an agent iterates, with Faust's operators.

A stream reads decoded values from a ``Cursor`` over an ``Inbox`` of batches. The common
path, ``async for value in stream``, decodes one value per step and builds nothing else:
no ``Event`` object, no per-record task or queue hand-off (``Event``s are made only when
``events()`` or ``current_event`` asks). Asking for the next value acknowledges the previous
one (Faust's rule), unless ``noack()`` was used.

Operators that only transform values (``filter``, ``echo``) run inline as processors on the
same cursor. Operators that move records to another topic (``group_by``, ``through``) hand
the work to the owning actor context, which forwards this stream's records to the topic
and returns a stream reading from it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from streamlog.dsl.runtime.acks import Batch
from streamlog.dsl.runtime.events import Event, event_at
from streamlog.dsl.runtime.inbox import Cursor
from streamlog.serde import SerdeError, field_getter, field_name

if TYPE_CHECKING:
    from streamlog.dsl.runtime.barrier import ProcessingBarrier
    from streamlog.dsl.runtime.clock import AsyncClock
    from streamlog.dsl.runtime.meters import AgentMeter

__all__ = ["Stream", "StreamOwner"]

_SKIP = object()

T_co = TypeVar("T_co", covariant=True)


class StreamOwner(Protocol):
    """What a stream needs from the actor that owns it (see ``agent.ActorContext``)."""

    clock: AsyncClock
    barrier: ProcessingBarrier | None
    meter: AgentMeter | None  # counts events taken and batch latencies (None: not counted)

    async def on_decode_error(self, batch: Batch, index: int, exc: Exception) -> None:
        """A record of ``batch`` at ``index`` did not decode: apply the error policy (may raise to
        stop the stream)."""
        ...

    def forward(
        self,
        source: Stream,
        target: Any,
        *,
        label: str,
        key: Callable[[Any], Any] | None,
    ) -> Stream:
        """Forward ``source`` to ``target`` (``group_by``/``through``) and return the stream reading
        it back."""
        ...

    def repartition_target(self, source: Stream, name: str, partitions: int | None) -> Any:
        """The topic ``group_by(name)`` repartitions through."""
        ...

    async def send_to(self, channel: Any, key: Any, value: Any) -> None:
        """Send ``value`` under ``key`` to ``channel`` (``echo``)."""
        ...


class _Processor:
    __slots__ = ("fun", "is_async", "kind", "targets")

    def __init__(self, kind: str, fun: Callable[..., Any], targets: tuple[Any, ...] = ()) -> None:
        self.kind = kind
        self.fun = fun
        self.is_async = inspect.iscoroutinefunction(fun)
        self.targets = targets


class Stream(Generic[T_co]):
    """An async iterator of decoded values from one reader's cursor.

    Generic in the value type only for annotations (``stream: Stream[Order]``, as Faust's
    ``Stream[T]``); nothing is checked at run time.
    """

    def __init__(
        self,
        cursor: Cursor,
        owner: StreamOwner,
        *,
        source: Any = None,
        processors: tuple[_Processor, ...] = (),
        autoack: bool = True,
    ) -> None:
        self._cursor = cursor
        self._owner = owner
        self.source = source  # the Topic or Channel read (for names, partitions, schema)
        self._processors = processors
        self._autoack = autoack
        self._stopped = False
        self._barrier = owner.barrier
        self._busy = False  # an event handed out and not finished (commit barrier)

    def __repr__(self) -> str:
        name = getattr(self.source, "name", None) or self._cursor.inbox.name
        return f"<Stream {name}>"

    def _derive(self, processor: _Processor | None = None, autoack: bool | None = None) -> Stream:
        processors = self._processors + ((processor,) if processor is not None else ())
        return Stream(
            self._cursor,
            self._owner,
            source=self.source,
            processors=processors,
            autoack=self._autoack if autoack is None else autoack,
        )

    # ------------------------------------------------------------------ iteration

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Any:
        if self._busy:
            self.release()
        cursor = self._cursor
        autoack = self._autoack
        while True:
            batch = cursor.batch
            index = cursor.index
            if batch is not None:
                if autoack:
                    batch.ack_upto(index)
                records = batch.records
                if index < len(records) and not batch.revoked:
                    cursor.index = index + 1
                    try:
                        value = batch.loads_value(records[index].value)
                    except SerdeError as exc:
                        await self._owner.on_decode_error(batch, index, exc)
                        continue
                    if self._processors:
                        value = await self._process(records[index], batch, value)
                        if value is _SKIP:
                            continue
                    if self._barrier is not None:
                        await self._admit()
                        if batch.revoked:  # while waiting for a commit: abandoned
                            self.release()
                            continue
                    return value
            if not await self._next_batch():
                raise StopAsyncIteration

    async def _admit(self) -> None:
        """Wait while a commit holds the barrier, then count this event as in processing.

        The commit may have been a rebalance's: callers check ``batch.revoked`` after this
        and abandon (``release``) an event whose partition went away meanwhile; its next
        owner reads it again.
        """
        barrier = self._barrier
        if barrier is None:  # an app without tables: no commit barrier
            return
        if not barrier.gate.is_set():
            await barrier.gate.wait()
        barrier.enter()
        self._busy = True

    def release(self) -> None:
        """The event handed out last is finished (or abandoned after an error)."""
        barrier = self._barrier
        if self._busy and barrier is not None:
            self._busy = False
            barrier.leave()

    async def _next_batch(self, timeout: float | None = None) -> bool:
        """Move the cursor to the next live batch; False when the stream ends (or times out)."""
        cursor = self._cursor
        meter = self._owner.meter
        if meter is not None and cursor.batch is not None and not cursor.batch.revoked:
            meter.done(cursor.batch)
        while True:
            if self._stopped:
                return False
            got: Batch | None | _Timeout
            if timeout is None:
                got = await cursor.inbox.get()
            else:
                got = await self._get_within(timeout)
                if isinstance(got, _Timeout):
                    return False
            if got is None:
                self._stopped = True
                return False
            batch = got
            if batch.revoked:
                continue
            cursor.batch = batch
            cursor.index = 0
            if meter is not None:
                meter.taken(batch)
            return True

    async def _get_within(self, timeout: float) -> Batch | None | _Timeout:
        getter = asyncio.ensure_future(self._cursor.inbox.get())
        sleeper = asyncio.ensure_future(self._owner.clock.sleep(timeout))
        try:
            done, _ = await asyncio.wait({getter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        if getter in done:
            return getter.result()
        getter.cancel()
        try:
            await getter
        except asyncio.CancelledError:
            return _TIMEOUT
        return getter.result()  # the batch arrived while cancelling: keep it

    async def _process(self, record: Any, batch: Batch, value: Any) -> Any:
        for processor in self._processors:
            if processor.kind == "filter":
                keep = processor.fun(value)
                if processor.is_async:
                    keep = await keep
                if not keep:
                    return _SKIP
            elif processor.kind == "echo":
                key = batch.loads_key(record.key)
                for target in processor.targets:
                    await self._owner.send_to(target, key, value)
            else:  # "map": Faust's processors give the value the stream hands on
                value = processor.fun(value)
                if processor.is_async:
                    value = await value
        return value

    async def _next_position(self) -> tuple[Batch, int, Any] | None:
        """The next (batch, index, value) without acknowledging anything (take, events)."""
        cursor = self._cursor
        while True:
            batch = cursor.batch
            if batch is not None and not batch.revoked and cursor.index < len(batch.records):
                index = cursor.index
                cursor.index = index + 1
                record = batch.records[index]
                try:
                    value = batch.loads_value(record.value)
                except SerdeError as exc:
                    await self._owner.on_decode_error(batch, index, exc)
                    continue
                if self._processors:
                    value = await self._process(record, batch, value)
                    if value is _SKIP:
                        batch.ack_one(index)
                        continue
                return batch, index, value
            if batch is not None and self._autoack:
                batch.ack_upto(len(batch.records))
            if not await self._next_batch():
                return None

    # ------------------------------------------------------------------ views

    @property
    def current_event(self) -> Event | None:
        """The event last returned by this stream (Faust's ``stream.current_event``)."""
        cursor = self._cursor
        batch = cursor.batch
        if batch is None or cursor.index == 0:
            return None
        return event_at(batch, cursor.index - 1)

    async def items(self) -> AsyncIterator[tuple[Any, Any]]:
        """(key, value) pairs."""
        while True:
            position = self._step_ready() or await self._step()
            if position is None:
                return
            batch, index, value = position
            yield batch.loads_key(batch.records[index].key), value

    async def events(self) -> AsyncIterator[Event]:
        """``Event``s: key, value, headers and the message's topic/partition/offset/time."""
        while True:
            position = self._step_ready() or await self._step()
            if position is None:
                return
            batch, index, value = position
            event = event_at(batch, index, value)
            yield event

    async def enumerate(self, start: int = 0) -> AsyncIterator[tuple[int, Any]]:
        """(n, value) pairs, n counting from ``start`` (Faust's ``enumerate``)."""
        n = start
        async for value in self:
            yield n, value
            n += 1

    def _step_ready(self) -> tuple[Batch, int, Any] | None:
        """``_step`` for the common case, with no coroutine: finish the previous event, then
        take the next record of the live batch in hand if that needs no wait (no
        processors, the commit gate open, the record decodes). None: ``_step`` decides."""
        if self._busy:
            self.release()
        cursor = self._cursor
        batch = cursor.batch
        if batch is None:
            return None
        index = cursor.index
        if self._autoack:
            batch.ack_upto(index)
        if self._processors or batch.revoked or index >= len(batch.records):
            return None
        barrier = self._barrier
        if barrier is not None and not barrier.gate.is_set():
            return None
        try:
            value = batch.loads_value(batch.records[index].value)
        except SerdeError:
            return None  # _step decodes it again and hands the error to the owner
        cursor.index = index + 1
        if barrier is not None:
            barrier.enter()
            self._busy = True
        return batch, index, value

    async def _step(self) -> tuple[Batch, int, Any] | None:
        """Like ``__anext__`` but returning the position too (and acking the previous one)."""
        position = self._step_ready()
        if position is not None:
            return position
        if self._busy:
            self.release()
        cursor = self._cursor
        if self._autoack and cursor.batch is not None:
            cursor.batch.ack_upto(cursor.index)
        while True:
            position = await self._next_position()
            if position is None or self._barrier is None:
                return position
            await self._admit()
            if not position[0].revoked:
                return position
            self.release()  # revoked while waiting for a commit: abandoned

    async def take(self, max_: int, within: float | None = None) -> AsyncIterator[list[Any]]:
        """Lists of up to ``max_`` values; with ``within`` (seconds), whatever arrived by then.

        Events in a list are acknowledged when the next list is asked for, i.e. after the
        agent has processed the whole list.
        """
        async for taken in self._take(max_, within):
            yield [value for _, _, value in taken]

    async def take_events(
        self, max_: int, within: float | None = None
    ) -> AsyncIterator[list[Event]]:
        """``take``, as lists of ``Event``s (key, value, headers, message): Faust's
        ``take_events``."""
        async for taken in self._take(max_, within):
            yield [event_at(batch, index, value) for batch, index, value in taken]

    async def take_records(
        self, max_: int, within: float | None = None
    ) -> AsyncIterator[list[tuple[Any, Any, Any]]]:
        """``take``, as ``(record, key, value)`` triples: the record as fetched (topic,
        partition, offset, timestamp, raw key and value, headers) with its decoded key and
        value, and no ``Event`` per record (what a connector's sink is handed)."""
        async for taken in self._take(max_, within):
            out = []
            for batch, index, value in taken:
                record = batch.records[index]
                out.append((record, batch.loads_key(record.key), value))
            yield out

    async def noack_take(self, max_: int, within: float | None = None) -> AsyncIterator[list[Any]]:
        """``take`` without acknowledging: the agent calls ``stream.ack(event)`` for each
        (Faust's ``noack_take``)."""
        async for values in self.noack().take(max_, within):
            yield values

    async def _take(
        self, max_: int, within: float | None
    ) -> AsyncIterator[list[tuple[Batch, int, Any]]]:
        """Lists of up to ``max_`` (batch, index, value) positions; see ``take``."""
        if max_ < 1:
            raise ValueError(f"take needs max_ >= 1, got {max_}")
        clock = self._owner.clock
        while True:
            values: list[tuple[Batch, int, Any]] = []
            sources: list[Batch] = []  # the batch of each value
            positions: list[tuple[Batch, int]] = []
            deadline = None if within is None else clock.monotonic() + within
            ended = False
            while len(values) < max_:
                cursor = self._cursor
                batch = cursor.batch
                if batch is None or batch.revoked or cursor.index >= len(batch.records):
                    remaining = None
                    if deadline is not None:
                        if not values:
                            deadline = None  # the window starts with the first value
                        else:
                            remaining = deadline - clock.monotonic()
                            if remaining <= 0:
                                break
                    if not await self._next_batch(remaining):
                        if self._stopped:
                            ended = True
                        break
                    continue
                index = cursor.index
                cursor.index = index + 1
                record = batch.records[index]
                try:
                    value = batch.loads_value(record.value)
                except SerdeError as exc:
                    await self._owner.on_decode_error(batch, index, exc)
                    continue
                if self._processors:
                    value = await self._process(record, batch, value)
                    if value is _SKIP:
                        positions.append((batch, index))
                        continue
                values.append((batch, index, value))
                sources.append(batch)
                positions.append((batch, index))
                if deadline is None and within is not None:
                    deadline = clock.monotonic() + within
            if values and self._barrier is not None:
                await self._admit()
                if any(batch.revoked for batch in sources):
                    # revoked while waiting for a commit: abandoned, re-read by the next owner
                    values = [v for v, b in zip(values, sources, strict=True) if not b.revoked]
                    if not values:
                        self.release()
            if values:
                yield values
                self.release()
            if self._autoack:
                for batch, index in positions:
                    batch.ack_one(index)
            if ended:
                return

    # ------------------------------------------------------------------ operators

    def filter(self, fun: Callable[[Any], bool | Awaitable[bool]]) -> Stream:
        """Values for which ``fun`` (sync or async) is true; the others are acknowledged."""
        return self._derive(_Processor("filter", fun))

    def echo(self, *channels: Any) -> Stream:
        """Also send every value to ``channels`` (topics, channels, agents)."""
        return self._derive(_Processor("echo", _identity, tuple(channels)))

    def add_processor(self, processor: Callable[[Any], Any]) -> None:
        """Pass every value through ``processor`` (sync or async) before it is handed
        out; what it returns is the value (Faust's ``add_processor``: it changes this
        stream, as Faust's does)."""
        self._processors = self._processors + (_Processor("map", processor),)

    def noack(self) -> Stream:
        """Stop acknowledging automatically: call ``stream.ack(event)`` when done."""
        return self._derive(autoack=False)

    def ack(self, event: Event) -> bool:
        """Acknowledge ``event`` (read from this stream's cursor); True if it was pending."""
        batch = self._cursor.batch
        message = event.message
        if batch is None:
            return False
        for i, record in enumerate(batch.records):
            if record.offset == message.offset and record.partition == message.partition:
                pending = i >= batch.acked and i not in (batch.out_of_order or ())
                batch.ack_one(i)
                return pending
        return False

    def group_by(
        self,
        key: Any,
        *,
        name: str | None = None,
        partitions: int | None = None,
    ) -> Stream:
        """Re-key through a repartition topic, so equal keys meet on one partition.

        ``key`` is a model field (``Ride.rider``) or a function of the value. The topic is
        ``<app-id>-<agent>-<name>-repartition``; ``name`` defaults to the field's name and
        is required for a function without a useful ``__name__`` (a lambda).
        """
        if callable(key) and not _is_field(key):
            getter = key
            label = name or getattr(key, "__name__", "")
            if not label or label == "<lambda>":
                raise ValueError("group_by(function) needs name= for the repartition topic")
        else:
            getter = field_getter(key)
            label = name or field_name(key)
        target = self._owner.repartition_target(self, label, partitions)
        return self._owner.forward(self, target, label=f"group_by({label})", key=getter)

    def through(self, channel: Any) -> Stream:
        """Forward every record to ``channel`` (a topic or its name) and read it back from there."""
        return self._owner.forward(self, channel, label=f"through({channel})", key=None)

    def stop(self) -> None:
        """End this stream after the current value (used when the worker stops)."""
        self._stopped = True


class _Timeout:
    """What ``_get_within`` returns when the time ran out first."""


_TIMEOUT = _Timeout()


def _identity(value: Any) -> Any:
    return value


def _is_field(obj: Any) -> bool:
    try:
        field_name(obj)
    except (TypeError, ValueError):
        return False
    return not inspect.isfunction(obj) and not inspect.ismethod(obj)
