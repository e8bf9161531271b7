"""A steady load for fault-injection tests: ``python loadgen.py BOOTSTRAP TOPIC COUNT RATE
[KEYS]`` produces ids ``000000``.. (key = value = the id) at RATE records/s with
confluent-kafka's idempotent producer, which retries through broker outages, and prints
``acked N`` lines as deliveries are confirmed and ``done N failed M`` at the end.

With KEYS, record ``i`` is keyed ``kNNN`` (``i % KEYS``) and its value is its sequence
number within that key (``i // KEYS``): a keyed stream whose per-key order a consumer can
check. No tests here.
"""

from __future__ import annotations

import sys
import time

from confluent_kafka import Producer


def main() -> int:
    bootstrap, topic, count, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    keys = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 120_000,
            "reconnect.backoff.max.ms": 500,
            "api.version.request": True,
            # Kafka's Java partitioner (murmur2), as streamlog tables expect of keyed inputs
            "partitioner": "murmur2_random",
        }
    )
    acked = 0
    failed = 0

    def delivered(err, msg):  # type: ignore[no-untyped-def]
        nonlocal acked, failed
        if err is None:
            acked += 1
        else:
            failed += 1
            print(f"failed {msg.key().decode()}: {err}", flush=True)

    start = time.monotonic()
    for i in range(count):
        due = start + i / rate
        now = time.monotonic()
        if due > now:
            producer.poll(due - now)
        ident = f"{i:06d}".encode()
        key, value = ident, ident
        if keys:
            key, value = f"k{i % keys:03d}".encode(), str(i // keys).encode()
        while True:
            try:
                producer.produce(topic, value, key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        if i % 100 == 99:
            print(f"sent {i + 1} acked {acked}", flush=True)
    remaining = producer.flush(180)
    print(f"done {acked} failed {failed} unflushed {remaining}", flush=True)
    return 0 if failed == 0 and remaining == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
