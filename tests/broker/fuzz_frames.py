"""Hostile request frames for the broker fuzz test: captured, mutated, random, lying.

* ``RecordingProxy`` sits between real clients and a broker and keeps every request frame
  the clients send, so the mutations start from what kafka-python, librdkafka and our
  own client really put on the wire.
* ``FuzzCase`` is the bytes to write (size prefixes included, possibly lying) and
  whether to close the socket right after (a frame cut short by EOF).
* ``fuzz_cases(seed, corpus, count)`` draws cases deterministically from a seed: byte
  mutations, value mutations (decoded, fields set to edge values, encoded again: well
  formed, so they reach the handlers), splices, random frames, size lies, bursts.
* ``compression_bomb`` builds a RecordBatch whose records inflate to a chosen size.

Nothing here asserts; the test module does.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import socket
import struct
import threading
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cramjam
from crc32c import crc32c

from streamlog.protocol import (
    SUPPORTED_VERSIONS,
    FrameDecoder,
    ProduceRequestView,
    RequestError,
    decode_request,
    encode_request,
)

__all__ = ["FuzzCase", "RecordingProxy", "compression_bomb", "fuzz_cases"]

_SIZE = struct.Struct(">i")


class RecordingProxy:
    """A loopback TCP proxy that records the request frames passing through it.

    Listens on ``(host, port)`` and forwards each connection to ``target``; every frame
    a client sends (size prefix stripped) lands in ``frames``. Run the broker with its
    advertised host set to the proxy's host and the same port, and clients reach the
    broker only through the proxy, whatever Metadata tells them.
    """

    def __init__(self, host: str, port: int, target: tuple[str, int]) -> None:
        self.target = target
        self.frames: list[bytes] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server((host, port))
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._spawn(self._accept_loop)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream, True)
            self._spawn(self._pump, upstream, client, False)

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        decoder = FrameDecoder(max_frame_size=1 << 30)
        try:
            while True:
                data = source.recv(1 << 16)
                if not data:
                    break
                if record:
                    frames = decoder.feed(data)
                    with self._lock:
                        self.frames.extend(frames)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                s.close()
        for thread in self._threads:
            thread.join(5)


@dataclass(frozen=True)
class FuzzCase:
    kind: str
    data: bytes  # what to write, size prefixes included
    close_after: bool = False  # EOF in the middle of what was announced


def _frame(body: bytes) -> bytes:
    return _SIZE.pack(len(body)) + body


# Values that make lengths and counts interesting: null, empty, one, sign edges, huge.
_INT32_EDGES = (-1, -2, 0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, -(2**31))
_VARINT_EDGES = (b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xff\xff\xff\xff\x0f", b"\xff" * 6)


def _flip_bits(rng: random.Random, body: bytes) -> bytes:
    out = bytearray(body)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(8, len(out)) if len(out) > 8 else rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _overwrite_count(rng: random.Random, body: bytes) -> bytes:
    """An array count or a length set to an edge value: lies about what follows."""
    out = bytearray(body)
    if len(out) < 12:
        return bytes(out)
    pos = rng.randrange(8, len(out) - 3)
    if rng.random() < 0.6:
        _SIZE.pack_into(out, pos, rng.choice(_INT32_EDGES + (len(body), len(body) - pos)))
    else:
        edge = rng.choice(_VARINT_EDGES)
        out[pos : pos + len(edge)] = edge
    return bytes(out)


def _truncate(rng: random.Random, body: bytes) -> bytes:
    return body[: rng.randrange(0, len(body))] if body else body


def _extend(rng: random.Random, body: bytes) -> bytes:
    return body + rng.randbytes(rng.randint(1, 64))


def _cut_slice(rng: random.Random, body: bytes) -> bytes:
    if len(body) < 10:
        return body
    start = rng.randrange(8, len(body))
    return body[:start] + body[min(len(body), start + rng.randint(1, 16)) :]


def _insert(rng: random.Random, body: bytes) -> bytes:
    pos = rng.randrange(8, len(body) + 1) if len(body) > 8 else len(body)
    return body[:pos] + rng.randbytes(rng.randint(1, 16)) + body[pos:]


_BODY_MUTATORS = (_flip_bits, _overwrite_count, _truncate, _extend, _cut_slice, _insert)

_INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}


def _hostile_value(rng: random.Random, kafka_type: str, value: Any) -> Any:
    """A value of the same Kafka type that a handler may not expect."""
    bits = _INT_BITS.get(kafka_type)
    if bits is not None:
        top = 2 ** (bits - 1)
        return rng.choice((-1, 0, 1, top - 1, -top, rng.randrange(-top, top)))
    if kafka_type in ("timedelta_i32", "timedelta_i64"):
        return datetime.timedelta(milliseconds=rng.choice((-1, 0, 2**31 - 1)))
    if kafka_type == "string":
        return rng.choice(("", "x" * 300, "\u00e9\u0000.", "__consumer_offsets", "a/../b"))
    if kafka_type in ("bytes", "records"):
        return rng.randbytes(rng.randint(0, 80))
    if kafka_type == "uuid":
        return uuid.UUID(int=rng.getrandbits(128))
    if kafka_type == "bool":
        return not value
    return value


def _mutate_entity(rng: random.Random, entity: Any, rate: float) -> Any:
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(entity):
        value = getattr(entity, f.name)
        if dataclasses.is_dataclass(value):
            changes[f.name] = _mutate_entity(rng, value, rate)
        elif isinstance(value, tuple):
            items = [
                _mutate_entity(rng, v, rate) if dataclasses.is_dataclass(v) else v for v in value
            ]
            if items and rng.random() < rate:
                items = items * rng.randint(2, 50)  # the same entry many times
            elif items and rng.random() < rate:
                items = []
            changes[f.name] = tuple(items)
        elif rng.random() < rate and "kafka_type" in f.metadata:
            changes[f.name] = _hostile_value(rng, f.metadata["kafka_type"], value)
    return dataclasses.replace(entity, **changes)


def _mutate_values(rng: random.Random, frame: bytes) -> bytes:
    """Well-formed, hostile: decode, set some fields to edge values, encode again."""
    try:
        request = decode_request(frame)
    except RequestError:
        return frame
    body = request.body.to_kio() if isinstance(request.body, ProduceRequestView) else request.body
    try:
        mutated = _mutate_entity(rng, body, rate=0.3)
        return encode_request(
            mutated, correlation_id=request.correlation_id, client_id=request.client_id
        )[4:]
    except Exception:  # kio refuses a value it cannot encode: keep the frame as it was
        return frame


def _random_header(rng: random.Random) -> bytes:
    api_key = rng.choice(sorted(SUPPORTED_VERSIONS))
    versions = SUPPORTED_VERSIONS[api_key]
    version = rng.randint(versions.min, versions.max + 1)  # sometimes one too new
    client_id = rng.choice((b"\xff\xff", b"\x00\x04fuzz"))
    return struct.pack(">hhi", api_key, version, rng.randrange(1 << 31)) + client_id


def fuzz_cases(seed: int, corpus: list[bytes], count: int) -> list[FuzzCase]:
    """``count`` cases drawn from ``seed``: mostly mutations of ``corpus`` frames."""
    rng = random.Random(seed)
    cases: list[FuzzCase] = []
    while len(cases) < count:
        roll = rng.random()
        base = rng.choice(corpus)
        if roll < 0.30:
            mutate = rng.choice(_BODY_MUTATORS)
            cases.append(FuzzCase(mutate.__name__.strip("_"), _frame(mutate(rng, base))))
        elif roll < 0.55:
            cases.append(FuzzCase("values", _frame(_mutate_values(rng, base))))
        elif roll < 0.65:
            other = rng.choice(corpus)
            cases.append(FuzzCase("splice", _frame(base[:8] + other[8:])))
        elif roll < 0.75:
            body = _random_header(rng) + rng.randbytes(rng.randint(0, 256))
            cases.append(FuzzCase("random-body", _frame(body)))
        elif roll < 0.78:
            cases.append(FuzzCase("random-bytes", rng.randbytes(rng.randint(1, 512))))
        elif roll < 0.84:
            # The prefix promises more than comes before EOF.
            cut = rng.randrange(0, len(base)) if base else 0
            lie = _SIZE.pack(len(base) + rng.randint(1, 1 << 20)) if rng.random() < 0.5 else b""
            data = (lie or _SIZE.pack(len(base))) + base[:cut]
            cases.append(FuzzCase("size-lie-eof", data, close_after=True))
        elif roll < 0.90:
            # The prefix promises less: the rest of the body reads as the next frame.
            short = rng.randrange(0, len(base)) if base else 0
            cases.append(FuzzCase("size-lie-short", _SIZE.pack(short) + base))
        elif roll < 0.94:
            size = rng.choice((-1, -(2**31), 0x7FFFFFFF, 200 * 1024 * 1024))
            cases.append(FuzzCase("size-lie-huge", _SIZE.pack(size) + base[:64]))
        else:
            # Many whole frames in one write (pipelining), each mutated or not.
            burst = b"".join(
                _frame(rng.choice(_BODY_MUTATORS)(rng, rng.choice(corpus)))
                if rng.random() < 0.05
                else _frame(rng.choice(corpus))
                for _ in range(rng.randint(2, 40))
            )
            cases.append(FuzzCase("pipelined", burst))
    return cases


# ---- compression bombs -------------------------------------------------------------

_CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
_CHUNK = b"\x00" * (1 << 20)


def _compressed_zeros(codec: str, megabytes: int) -> bytes:
    """``megabytes`` MiB of zero bytes, compressed, built without holding them whole."""
    if codec == "gzip":
        gz = zlib.compressobj(9, zlib.DEFLATED, 31)
        return b"".join(gz.compress(_CHUNK) for _ in range(megabytes)) + gz.flush()
    if codec == "zstd":
        zstd = cramjam.zstd.Compressor()
        for _ in range(megabytes):
            zstd.compress(_CHUNK)
        return bytes(zstd.finish())
    if codec == "lz4":
        lz4 = cramjam.lz4.Compressor(block_linked=False, content_checksum=False)
        for _ in range(megabytes):
            lz4.compress(_CHUNK)
        return bytes(lz4.finish())
    # snappy, xerial framing as Kafka clients write it: 32 KiB blocks.
    block = bytes(cramjam.snappy.compress_raw(_CHUNK[: 32 * 1024]))
    header = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    count = megabytes * 32
    return header + (_SIZE.pack(len(block)) + block) * count


def compression_bomb(codec: str, megabytes: int, timestamp_ms: int) -> bytes:
    """A RecordBatch v2 of one record whose compressed records section inflates to
    ``megabytes`` MiB (zeros: not valid records, which a reader learns only after
    inflating them). CRC-valid, so the broker stores it."""
    records = _compressed_zeros(codec, megabytes)
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            _CODECS[codec],  # attributes: the codec, CreateTime
            0,  # last offset delta
            timestamp_ms,
            timestamp_ms,
            -1,  # producer id
            -1,  # producer epoch
            -1,  # base sequence
            1,  # record count
        )
        + records
    )
    crc = crc32c(after_crc)
    head = struct.pack(">qiib", 0, 4 + 1 + 4 + len(after_crc), -1, 2)
    return head + struct.pack(">I", crc) + after_crc
