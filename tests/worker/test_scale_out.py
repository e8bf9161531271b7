"""Scale-out, as users run it: several ``streamlog worker`` processes of one app
(``apps/scaleout.py``, each with its own ``--data-dir`` and ``--web-port``) on a real
``streamlog broker``, a steady keyed load (``loadgen.py``: 8 partitions, per-key sequence
numbers), and workers killed (kill -9) or added mid-stream. Afterwards every output
record, every table key (through every worker's ``/tables/...``) is checked against the
input.
"""

from __future__ import annotations

import collections
import json
import os
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.broker.brokerproc import BrokerProcess

from .chaos import Load, create_topic, end_offsets
from .workerproc import APPS, WorkerProcess, group_offsets, read_topic, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SCALEOUT = os.path.join(APPS, "scaleout.py")
GROUP = "scaleout"
SOURCE = "keyed"
OUTPUT = "scaleout-out"
PARTITIONS = 8
KEYS = 200
HOLDING = re.compile(r"holding partitions: (.*)$", re.M)


@dataclass
class Output:
    """One output record: one processing of the event (key, seq)."""

    key: str
    seq: int
    worker: str
    count: int
    partition: int
    offset: int


@dataclass
class Scale:
    """A broker, a keyed load and named scaleout workers in ``workdir``."""

    workdir: str
    broker: BrokerProcess = field(init=False)
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    load: Load | None = None

    def __post_init__(self) -> None:
        # no initial delay: the group forms as soon as a worker joins; the others join it
        # through (cooperative) rebalances
        self.broker = BrokerProcess(
            os.path.join(self.workdir, "broker"), ("--group-initial-rebalance-delay-ms", "0")
        )

    @property
    def url(self) -> str:
        return f"kafka://{self.broker.bootstrap}"

    def start_broker(self) -> None:
        self.broker.start()
        create_topic(self.url, SOURCE, PARTITIONS)

    def start_workers(self, *names: str, ready: bool = True) -> None:
        """Start workers together; return once each is ready (or at once)."""
        for name in names:
            home = os.path.join(self.workdir, name)
            os.makedirs(home)
            worker = WorkerProcess(
                SCALEOUT,
                self.url,
                home,
                ("--data-dir", os.path.join(home, "data"), "--web-port", "0"),
                env={"SCALEOUT_WORKER": name},
            )
            self.workers[name] = worker
            worker.start(ready=None)
        for name in names if ready else ():
            self.workers[name].wait_for_log("worker ready")

    def live(self) -> dict[str, WorkerProcess]:
        return {n: w for n, w in self.workers.items() if w.process is not None}

    def holding(self, name: str) -> set[int] | None:
        """The source partitions the worker's last ``holding partitions:`` line names
        (None: no such line yet)."""
        lines = HOLDING.findall(self.workers[name].logs())
        if not lines:
            return None
        found = re.search(SOURCE + r" \[([\d, ]*)\]", lines[-1])
        if found is None:
            return set()
        return {int(p) for p in found.group(1).split(",") if p.strip()}

    def split(self) -> dict[str, set[int]] | None:
        """Each live worker's source partitions once they split all of them between them,
        none held twice and each worker holding some (None until then)."""
        held = {name: self.holding(name) for name in self.live()}
        if any(not parts for parts in held.values()):
            return None
        everything = [p for parts in held.values() for p in parts if parts]
        if sorted(everything) != list(range(PARTITIONS)):
            return None
        return held  # type: ignore[return-value]

    def wait_split(self, timeout: float = 60) -> dict[str, set[int]]:
        return wait_until(  # type: ignore[no-any-return]
            self.split, timeout, f"{sorted(self.live())} to split {SOURCE}'s partitions"
        )

    def start_load(self, count: int, rate: float) -> Load:
        self.load = Load(
            self.broker.bootstrap,
            count,
            rate,
            os.path.join(self.workdir, "load.log"),
            topic=SOURCE,
            keys=KEYS,
        ).start()
        return self.load

    def at(self, acked: int) -> None:
        """Until the load has had ``acked`` records acknowledged."""
        load = self.load
        assert load is not None
        wait_until(lambda: load.acked() >= acked, 60, f"{acked} records acknowledged")

    def wait_drained(self, count: int, timeout: float = 60) -> None:
        """Until the group has committed every input (the workers caught up)."""

        def caught_up() -> bool:
            ends = end_offsets(self.url, SOURCE)
            committed = {
                tp.partition: o
                for tp, o in group_offsets(self.url, GROUP).items()
                if tp.topic == SOURCE
            }
            return sum(ends.values()) >= count and committed == ends

        wait_until(caught_up, timeout, "the group to commit every input", interval=0.2)

    def web_url(self, name: str) -> str:
        match = self.workers[name].wait_for_log(r"web endpoint on (http://127\.0\.0\.1:\d+)")
        return match.split(" on ", 1)[1]

    def busy(self, name: str, events: int, commits: int) -> bool:
        """Whether the worker's agent has taken ``events`` events and it has committed
        offsets ``commits`` times (its ``/stats``)."""
        status, stats = get_json(f"{self.web_url(name)}/stats")
        assert status == 200, stats
        taken = sum(agent["events_in"] for agent in stats["agents"].values())
        return taken >= events and stats["commits"] >= commits

    def outputs(self, at_least: int) -> list[Output]:
        """Every output record, by partition and offset (a key's records are in one
        partition, in the order they were written)."""
        found = []
        for record in read_topic(self.url, OUTPUT, at_least=at_least, timeout=60):
            key, seq, worker, count = (record.value or b"").decode().split()
            assert (record.key or b"").decode() == key
            found.append(Output(key, int(seq), worker, int(count), record.partition, record.offset))
        return found

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM every live worker at once (one after the other, each leaving would
        hand its partitions to the others, who would recover them only to stop); their
        exit codes."""
        live = self.live()
        with ThreadPoolExecutor(len(live)) as pool:
            codes = {name: pool.submit(w.stop, 60) for name, w in live.items()}
        return {name: code.result() for name, code in codes.items()}

    def close(self) -> None:
        if self.load is not None:
            self.load.kill()
        for worker in self.workers.values():
            worker.kill()
        self.broker.stop()

    def logs(self) -> str:
        parts = [f"--- broker\n{self.broker.logs()[-3000:]}"]
        for name, worker in self.workers.items():
            parts.append(f"--- {name}\n{worker.logs()[-5000:]}")
        if self.load is not None:
            parts.append(f"--- load\n{self.load.logs()[-1000:]}")
        return "\n".join(parts)


@pytest.fixture
def scale(tmp_path):
    run = Scale(str(tmp_path))
    try:
        yield run
    finally:
        run.close()


def reference(count: int) -> dict[str, int]:
    """Events per key of a load of ``count`` records."""
    return dict(collections.Counter(f"k{i % KEYS:03d}" for i in range(count)))


def by_key(outputs: list[Output]) -> dict[str, list[Output]]:
    keyed: dict[str, list[Output]] = collections.defaultdict(list)
    for out in outputs:
        keyed[out.key].append(out)
    return keyed


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def ask_every_worker(urls: dict[str, str], table: str, key: str) -> dict[str, Any]:
    """``/tables/TABLE/KEY`` of every worker: they must give one answer; returns it."""
    answers = {}
    for name, url in urls.items():
        status, body = get_json(f"{url}/tables/{table}/{key}")
        assert status == 200, (name, table, key, body)
        answers[name] = body
    first = next(iter(answers.values()))
    assert all(a == first for a in answers.values()), answers
    return first


def test_a_worker_killed_mid_stream_is_taken_over_by_the_other_two(scale):
    """kill -9 one of three workers mid-stream: the two others take its partitions
    (after the broker's session timeout) and finish the stream.

    At-least-once, exactly as the committed offsets allow: the group's offsets are read
    right after the kill (the survivors take the partitions over only a session timeout
    later), so the event each of the victim's keys is replayed from is known: its first
    event at or after its partition's committed offset. Per key, the outputs are then
    the victim's prefix 0..a-1 followed by one survivor's b..n-1, with b that replay
    start and b <= a (an offset is committed only after the outputs of its events are
    acknowledged); the keys of the other partitions have one worker and no duplicate.
    The duplicates are thus counted exactly: a - b per key.

    The table ``applied`` lists the sequence numbers each key's count holds, in order:
    0..c-1 then b..n-1, where c is how far the changelog the victim wrote goes. count -
    events is the sequence numbers held twice, and each of them was processed twice.
    Counted twice is not the same as processed twice: outputs are sent as they are made
    and the changelog at each commit (state/checkpoint.py), so an event processed after
    the victim's last commit usually has its output written and its count lost with
    the victim (its next owner counts it once, from the last committed state); it is
    counted twice only when the kill lands between a commit's changelog
    acknowledgement and its offset commit.
    """
    count, rate = 2400, 600.0
    scale.start_broker()
    scale.start_workers("w1", "w2", "w3")
    before = scale.wait_split()
    urls = {name: scale.web_url(name) for name in scale.workers}
    scale.start_load(count, rate)
    scale.at(count // 3)
    wait_until(lambda: scale.busy("w2", 100, 2), 60, "w2 to process and commit")
    scale.workers["w2"].kill()
    killed_at = time.monotonic()
    committed = {
        tp.partition: offset
        for tp, offset in group_offsets(scale.url, GROUP).items()
        if tp.topic == SOURCE
    }
    victim = before["w2"]
    survivors = {name: urls[name] for name in ("w1", "w3")}
    held = scale.wait_split()
    taken_over = time.monotonic() - killed_at  # printed, not asserted
    assert set(held) == set(survivors)
    assert scale.load is not None
    scale.load.wait(60)
    scale.wait_drained(count)

    expected = reference(count)
    # per key: its partition, and the sequence number its replay starts at
    partition_of: dict[str, int] = {}
    replay_from: dict[str, int] = dict(expected)
    for record in read_topic(scale.url, SOURCE, at_least=count, timeout=60):
        key, seq = (record.key or b"").decode(), int(record.value or b"")
        partition_of[key] = record.partition
        if record.partition in victim and record.offset >= committed.get(record.partition, 0):
            replay_from[key] = min(replay_from[key], seq)
    outputs = scale.outputs(count)
    keyed = by_key(outputs)
    assert sorted(keyed) == sorted(expected)
    processed_by = collections.Counter(out.worker for out in outputs)
    assert set(processed_by) == {"w1", "w2", "w3"}, processed_by
    output_dups = {}
    for key, outs in keyed.items():
        n, b = expected[key], replay_from[key]
        seqs = [out.seq for out in outs]
        workers = [out.worker for out in outs]
        if partition_of[key] not in victim:
            assert seqs == list(range(n)), (key, outs)
            assert len(set(workers)) == 1 and workers[0] != "w2", (key, outs)
            output_dups[key] = 0
            continue
        a = workers.count("w2")
        assert workers[:a] == ["w2"] * a and len(set(workers[a:])) <= 1, (key, outs)
        assert b <= a and seqs == list(range(a)) + list(range(b, n)), (key, b, outs)
        output_dups[key] = a - b

    table_dups = {}
    owners: dict[str, str] = {}
    for key, n in expected.items():
        counted = ask_every_worker(survivors, "counts", key)
        assert counted["table"] == "counts" and counted["key"] == key
        assert counted["owner"] in survivors.values(), counted
        owners[key] = counted["owner"]
        owner = next(name for name, url in survivors.items() if url == counted["owner"])
        assert counted["partition"] == partition_of[key] and counted["partition"] in held[owner]
        applied = ask_every_worker(survivors, "applied", key)
        seqs = [int(s) for s in applied["value"].split()]
        b = replay_from[key]
        c = len(seqs) - (n - b)
        assert b <= c and seqs == list(range(c)) + list(range(b, n)), (key, b, seqs)
        table_dups[key] = c - b
        assert counted["value"] == n + table_dups[key], (key, counted, seqs)
        assert ask_every_worker(survivors, "max_seq", key)["value"] == n - 1
        # what the table counted twice was processed twice
        assert table_dups[key] <= output_dups[key], (key, seqs, keyed[key])
        # the last output is the last counting: it carries the table's count
        assert keyed[key][-1].count == counted["value"], (key, keyed[key][-1], counted)
    assert set(owners.values()) == set(survivors.values())  # both answer for some keys
    twice_out = sum(output_dups.values())
    twice_counted = sum(table_dups.values())
    print(
        f"\n{count} events over {KEYS} keys; processed per worker {dict(processed_by)}; "
        f"{twice_out} processed twice, {twice_counted} of them counted twice; survivors "
        f"held every partition {taken_over:.1f} s after the kill (session timeout 6 s)"
    )
    codes = scale.stop_all()
    assert codes == {"w1": 0, "w3": 0}, scale.logs()


def test_a_fourth_worker_joining_mid_stream_takes_partitions_without_a_duplicate(scale):
    """A fourth worker joins three mid-stream: partitions move to it, nothing is lost, and
    nothing is processed twice or by two workers at once.

    Why no duplicate at all: a join is a clean hand-over. With cooperative rebalancing a
    worker gives up only the partitions that move, and before it gives one up it commits
    what it processed of it (the commit on revoke: tables, outputs, then offsets); the
    partition is assigned to the new worker only in the next rebalance, after that
    revocation is done, and the new worker starts at the committed offset. So each event
    is processed by exactly one worker, and per key the outputs' sequence numbers, in
    output order, are 0, 1, 2, ... with no repeat, whichever workers wrote them.
    """
    count, rate = 2400, 300.0
    scale.start_broker()
    scale.start_workers("w1", "w2", "w3")
    before = scale.wait_split()
    scale.start_load(count, rate)
    scale.at(count // 10)
    logged = {name: len(w.logs()) for name, w in scale.workers.items()}  # before w4
    scale.start_workers("w4", ready=False)
    # the load must still flow once w4 holds partitions (events of a moved partition on
    # both sides of the move): on a machine too busy for w4 to join by 80 % of the load,
    # the load waits (SIGSTOP) until it has
    load = scale.load
    assert load is not None
    wait_until(
        lambda: "w4" in (scale.split() or {}) or load.acked() >= count * 4 // 5,
        60,
        "w4 to take partitions or 80 % of the load",
    )
    paused = "w4" not in (scale.split() or {})
    if paused:
        load.pause()
    try:
        after = scale.wait_split()
    finally:
        if paused:
            load.resume()
    assert set(after) == {"w1", "w2", "w3", "w4"}
    moved = after["w4"]
    # sticky: only what w4 takes moves, each from the worker holding it before, which
    # logged giving it up
    for name in ("w1", "w2", "w3"):
        assert after[name] == before[name] - moved, (before, after)
        revoked = set()
        since = scale.workers[name].logs()[logged[name] :]
        for line in re.findall(r"partitions revoked: (.*)$", since, re.M):
            found = re.search(SOURCE + r" \[([\d, ]*)\]", line)
            revoked |= {int(p) for p in found.group(1).split(",")} if found else set()
        assert revoked == before[name] & moved, (name, revoked, before, moved)
    load.wait(60)
    scale.wait_drained(count)

    expected = reference(count)
    outputs = scale.outputs(count)
    assert len(outputs) == count, f"{len(outputs) - count} duplicate(s)"
    keyed = by_key(outputs)
    assert sorted(keyed) == sorted(expected)
    handed_over = 0
    for key, outs in keyed.items():
        assert [o.seq for o in outs] == list(range(expected[key])), (key, outs)
        assert [o.count for o in outs] == list(range(1, expected[key] + 1)), (key, outs)
        workers = [o.worker for o in outs]
        # one hand-over at most: from the partition's old holder to w4
        changes = [(a, b) for a, b in zip(workers, workers[1:], strict=False) if a != b]
        assert all(b == "w4" for _, b in changes), (key, workers)
        handed_over += len(changes)
    assert handed_over > 0  # some key went on in w4 where another worker stopped

    # the tables, each key asked of one worker in turn (the kill test asks every one)
    urls = [scale.web_url(name) for name in sorted(scale.workers)]
    for i, (key, n) in enumerate(sorted(expected.items())):
        asked = {"": urls[i % len(urls)]}
        assert ask_every_worker(asked, "counts", key)["value"] == n
        assert ask_every_worker(asked, "applied", key)["value"] == " ".join(map(str, range(n)))
    redo = sum(
        int(n)
        for w in scale.workers.values()
        for n in re.findall(r"(\d+) record\(s\) processed here after", w.logs())
    )
    assert redo == 0
    print(
        f"\npartitions {sorted(moved)} moved to w4 (before: {before}); {handed_over} keys "
        f"handed over{'; the load waited for w4' if paused else ''}"
    )
    codes = scale.stop_all()
    assert codes == {"w1": 0, "w2": 0, "w3": 0, "w4": 0}, scale.logs()
