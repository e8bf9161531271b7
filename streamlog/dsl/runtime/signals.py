"""Faust's app signals: ``@app.on_partitions_assigned.connect`` and the like.

A signal keeps receivers and calls each as ``receiver(sender, *args, **kwargs)`` when it is
sent (receivers take ``**kwargs``, as Faust requires, so new arguments can be added).
``Signal`` is sent with ``await`` and awaits receivers that are coroutine functions;
``SyncSignal`` calls plain functions. Declared on the ``App`` class, a signal is also
connectable there (``App.on_partitions_revoked.connect``): receivers of the class hear
every app, receivers of an app only that app, as in Faust.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Signal", "SyncSignal", "SignalSlot"]

F = TypeVar("F", bound=Callable[..., Any])
SignalT = TypeVar("SignalT", bound="_BaseSignal")


class _BaseSignal:
    """Receivers and the sender they are told about (None on the class)."""

    __slots__ = ("name", "sender", "receivers", "inherited")

    def __init__(
        self, name: str = "", sender: Any = None, parent: _BaseSignal | None = None
    ) -> None:
        self.name = name
        self.sender = sender
        self.receivers: list[Callable[..., Any]] = []
        # the class's receivers (its list itself, so later connects there count here):
        # "any receiver?" is ``signal.receivers or signal.inherited``, cheap per send
        self.inherited: list[Callable[..., Any]] = [] if parent is None else parent.receivers

    def connect(self, fun: F) -> F:
        """Add ``fun`` as a receiver; returns it, so this is a decorator."""
        self.receivers.append(fun)
        return fun

    def disconnect(self, fun: Callable[..., Any]) -> None:
        """Remove ``fun`` (no error when it is not connected)."""
        if fun in self.receivers:
            self.receivers.remove(fun)

    def all_receivers(self) -> list[Callable[..., Any]]:
        """The class's receivers, then this app's."""
        return [*self.inherited, *self.receivers]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {len(self.all_receivers())} receivers>"


class Signal(_BaseSignal):
    """An asynchronous signal (``await signal.send(...)``)."""

    __slots__ = ()

    async def send(self, *args: Any, **kwargs: Any) -> None:
        """Call every receiver with the sender first; coroutine results are awaited."""
        for receiver in self.all_receivers():
            result = receiver(self.sender, *args, **kwargs)
            if inspect.isawaitable(result):
                await result


class SyncSignal(_BaseSignal):
    """A synchronous signal (``signal.send(...)``): receivers are plain functions."""

    __slots__ = ()

    def send(self, *args: Any, **kwargs: Any) -> None:
        """Call every receiver with the sender first."""
        for receiver in self.all_receivers():
            receiver(self.sender, *args, **kwargs)


class SignalSlot(Generic[SignalT]):
    """A class attribute holding one signal per app, plus the class's own (descriptor)."""

    def __init__(self, kind: type[SignalT]) -> None:
        self.kind = kind
        self.name = ""
        self.class_signal: SignalT = kind()

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.class_signal.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> SignalT:
        if instance is None:
            return self.class_signal
        found = instance.__dict__.get(self.name)
        if found is None:
            found = instance.__dict__[self.name] = self.kind(
                self.name, sender=instance, parent=self.class_signal
            )
        return found
