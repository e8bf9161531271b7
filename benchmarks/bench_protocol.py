"""Micro-benchmarks of the wire codec's hot paths against kio's generic reader and writer.

    .venv/bin/python benchmarks/bench_protocol.py

Prints microseconds per call (best of several repeats) for:
  * Produce request body decode: our zero-copy decoder vs kio's native (Rust) reader;
  * Fetch response body encode: our hand-written encoder vs kio's generic writer;
  * the full server path (``decode_request``) for Produce and Fetch requests, including
    the structural pre-check that guards kio's reader.
"""

from __future__ import annotations

import io
import timeit
from collections.abc import Callable

from kio.serial import entity_reader, entity_writer

from streamlog.protocol import (
    ApiKey,
    RequestPayload,
    ResponsePayload,
    build_message,
    decode_produce_request,
    decode_request,
    encode_fetch_response,
    encode_request,
    request_class,
    response_class,
)


def best_us(fn: Callable[[], object], min_time: float = 0.2) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(number, int(number * min_time / 0.2))
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


def kio_write(entity: object) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


def produce_request(version: int, partitions: int, batch_size: int) -> RequestPayload:
    return build_message(
        request_class(ApiKey.PRODUCE, version),
        acks=-1,
        timeout=30_000,
        topic_data=[
            {
                "name": "orders",
                "partition_data": [
                    {"index": i, "records": bytes(batch_size)} for i in range(partitions)
                ],
            }
        ],
    )


def fetch_response(version: int, partitions: int, batch_size: int) -> ResponsePayload:
    return build_message(
        response_class(ApiKey.FETCH, version),
        responses=[
            {
                "topic": "orders",
                "partitions": [
                    {
                        "partition_index": i,
                        "high_watermark": 123_456,
                        "last_stable_offset": 123_456,
                        "log_start_offset": 0,
                        "aborted_transactions": None,
                        "records": bytes(batch_size) if batch_size else None,
                    }
                    for i in range(partitions)
                ],
            }
        ],
    )


def fetch_request(version: int, partitions: int) -> RequestPayload:
    return build_message(
        request_class(ApiKey.FETCH, version),
        max_wait=500,
        min_bytes=1,
        topics=[
            {
                "topic": "orders",
                "partitions": [
                    {"partition": i, "fetch_offset": 1000, "partition_max_bytes": 1 << 20}
                    for i in range(partitions)
                ],
            }
        ],
    )


def row(label: str, ours: float, theirs: float) -> None:
    print(f"  {label:<42} ours {ours:9.2f} us   kio {theirs:9.2f} us   x{theirs / ours:5.1f}")


def main() -> None:
    print("Produce request body decode (ours: zero-copy views; kio: native reader, copies)")
    for version in (3, 9):
        for partitions, batch in ((1, 1_000), (1, 16_384), (1, 1_048_576), (10, 16_384)):
            request = produce_request(version, partitions, batch)
            body = kio_write(request)
            reader = entity_reader(type(request))
            ours = best_us(lambda b=body, v=version: decode_produce_request(b, 0, v))
            theirs = best_us(lambda b=body, r=reader: r(b, 0))
            row(f"v{version} {partitions} partition(s) x {batch} B", ours, theirs)

    print("Fetch response body encode (ours: hand-written; kio: generic writer)")
    for version in (4, 11, 12):
        for partitions, batch in ((1, 1_000), (1, 1_048_576), (10, 16_384), (100, 0)):
            response = fetch_response(version, partitions, batch)
            assert encode_fetch_response(response) == kio_write(response)
            ours = best_us(lambda r=response: encode_fetch_response(r))
            theirs = best_us(lambda r=response: kio_write(r))
            row(f"v{version} {partitions} partition(s) x {batch} B", ours, theirs)

    print("decode_request, whole frame (header + guard + body)")
    for version in (4, 12):
        request = fetch_request(version, 4)
        frame = encode_request(request, correlation_id=1, client_id="bench")[4:]
        reader = entity_reader(type(request))
        offset = len(frame) - len(kio_write(request))
        full = best_us(lambda f=frame: decode_request(f))
        bare = best_us(lambda f=frame, r=reader, o=offset: r(f, o))
        print(
            f"  Fetch v{version} request, 4 partitions: decode_request {full:6.2f} us"
            f"   (kio reader alone {bare:5.2f} us)"
        )
    for version in (3, 9):
        request = produce_request(version, 1, 16_384)
        frame = encode_request(request, correlation_id=1, client_id="bench")[4:]
        full = best_us(lambda f=frame: decode_request(f))
        print(f"  Produce v{version} request, 1 x 16 KiB:  decode_request {full:6.2f} us")


if __name__ == "__main__":
    main()
