"""kcat (librdkafka's command-line client, from Debian) against ``streamlog broker``."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .secure_brokers import USERS, sasl_broker

__all__ = ["sasl_broker"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.skipif(
    shutil.which("kcat") is None, reason="kcat is not installed (apt-get install kcat)"
)

# kcat 1.7 probes the broker's version with an ApiVersions request; be explicit about
# the rest so a slow machine does not make it give up early.
COMMON = ["-X", "socket.timeout.ms=20000", "-X", "metadata.request.timeout.ms=20000"]


def kcat(broker, *args: str, input: str | None = None, timeout: float = 120) -> str:
    out = subprocess.run(
        ["kcat", "-b", broker.bootstrap, *COMMON, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_kcat_produces_and_consumes_10000_keyed_messages(shared_broker) -> None:
    lines = [f"key-{i % 97}:value-{i}" for i in range(10_000)]
    kcat(shared_broker, "-P", "-t", "kcat-keyed", "-K", ":", input="\n".join(lines) + "\n")
    out = kcat(
        shared_broker,
        "-C",
        "-t",
        "kcat-keyed",
        "-o",
        "beginning",
        "-e",
        "-c",
        "10000",
        "-f",
        "%p|%o|%k|%s\n",
    )
    rows = [line.split("|") for line in out.splitlines()]
    assert len(rows) == 10_000
    assert sorted(int(r[3].split("-")[1]) for r in rows) == list(range(10_000))
    assert all(r[2] == f"key-{int(r[3].split('-')[1]) % 97}" for r in rows)
    assert [int(r[1]) for r in rows] == list(range(10_000))  # one partition: offsets in order


def test_kcat_keys_are_partitioned_like_kafka_and_listed(shared_broker) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=shared_broker.bootstrap)
    try:
        admin.create_topics([NewTopic("kcat-parts", num_partitions=4, replication_factor=1)])
    finally:
        admin.close()
    lines = [f"user-{i}:v{i}" for i in range(200)]
    # -z none keeps it simple; murmur2 is librdkafka's Kafka-compatible partitioner
    kcat(
        shared_broker,
        "-P",
        "-t",
        "kcat-parts",
        "-K",
        ":",
        "-X",
        "partitioner=murmur2_random",
        input="\n".join(lines) + "\n",
    )
    out = kcat(shared_broker, "-C", "-t", "kcat-parts", "-o", "beginning", "-e", "-f", "%p %k\n")
    from streamlog.log.partitioner import partition_for_key

    seen = [line.split() for line in out.splitlines()]
    assert len(seen) == 200
    for partition, key in seen:
        assert int(partition) == partition_for_key(key.encode(), 4)
    listing = kcat(shared_broker, "-L", "-t", "kcat-parts")
    assert 'topic "kcat-parts" with 4 partitions' in listing
    for p in range(4):
        assert f"partition {p}, leader 0, replicas: 0, isrs: 0" in listing
    full = kcat(shared_broker, "-L")
    assert "1 brokers:" in full and f"broker 0 at 127.0.0.1:{shared_broker.port}" in full
    assert 'topic "kcat-keyed"' in full or 'topic "kcat-parts"' in full


# --- SASL (SASL_PLAINTEXT), against a broker with a users file ----------------------------


def kcat_sasl(
    broker, mechanism: str, user: str, password: str, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "kcat",
            "-b",
            broker.bootstrap,
            *COMMON,
            "-X",
            "security.protocol=SASL_PLAINTEXT",
            "-X",
            f"sasl.mechanisms={mechanism}",
            "-X",
            f"sasl.username={user}",
            "-X",
            f"sasl.password={password}",
            *args,
        ],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("user", ["alice", "bob"])
def test_kcat_logs_in_with_sasl_and_round_trips(sasl_broker, mechanism: str, user: str) -> None:
    # kcat 1.7 (librdkafka 2.0) sends SCRAM's final nonce as client nonce twice + server
    # nonce; Kafka accepts that, and so must we.
    topic = f"kcat-sasl-{mechanism.lower()}-{user}"
    lines = [f"k{i % 7}:v{i}" for i in range(500)]
    password = USERS[user]
    produced = kcat_sasl(
        sasl_broker, mechanism, user, password, "-P", "-t", topic, "-K", ":",
        input="\n".join(lines) + "\n",
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    consumed = kcat_sasl(
        sasl_broker, mechanism, user, password,
        "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%o %k %s\n",
    )  # fmt: skip
    assert consumed.returncode == 0, consumed.stderr
    rows = [line.split() for line in consumed.stdout.splitlines()]
    assert rows == [[str(i), f"k{i % 7}", f"v{i}"] for i in range(500)]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kcat_with_a_wrong_password_is_refused(sasl_broker, mechanism: str) -> None:
    # kcat retries the refused login until -m runs out; the first refusal arrives ~0.1 s
    # after connecting (the broker's failed-authentication delay), so 3 s is ample.
    out = kcat_sasl(sasl_broker, mechanism, "alice", "wrong", "-L", "-m", "3")
    assert out.returncode != 0
    assert "SASL authentication error: Authentication failed" in out.stderr
    assert 'topic "' not in out.stdout
