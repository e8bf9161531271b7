"""Where a worker keeps its table stores, as a real ``streamlog worker`` process: on the
app's default ``file://./.streamlog`` log they live inside it (``.streamlog/state/<app>``),
so ``rm -rf .streamlog`` starts the app afresh, state and all, without a store left behind
that no longer matches its changelog. With a ``datadir`` outside the log, a store kept
after its log was deleted is rebuilt with a warning that says why, with the offsets."""

from __future__ import annotations

import os
import shutil

import pytest

from .workerproc import APPS, WorkerProcess, read_topic, run_cli

TABLECOUNT = os.path.join(APPS, "tablecount.py")


def send(workdir: str, key: str, value: str, *broker: str) -> None:
    out = run_cli("send", TABLECOUNT, "events", value, "--key", key, *broker, cwd=workdir)
    assert out.returncode == 0, out.stderr


def store_rows(workdir: str) -> list[list[str]]:
    """``streamlog tables APP counts --from store``: the RocksDB store's rows, read from
    the app's default datadir (the worker has stopped)."""
    out = run_cli("tables", TABLECOUNT, "counts", "--from", "store", cwd=workdir)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| '")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


@pytest.mark.timeout(90)
def test_stores_live_in_the_file_log_and_go_with_it(tmp_path):
    workdir = str(tmp_path)
    worker = WorkerProcess(TABLECOUNT, None, workdir, env={"TABLECOUNT_STORE": "rocksdb://"})
    try:
        worker.start()
        send(workdir, "a", "1")
        send(workdir, "a", "2")
        assert len(read_topic(worker.kafka_url, "processed", at_least=2)) == 2
        assert worker.stop() == 0, worker.logs()
        state = tmp_path / ".streamlog" / "state" / "tablecount"
        assert sorted(os.listdir(state / "tables")) == ["counts", "windows"]
        assert not os.path.exists(tmp_path / "tablecount-data")
        assert store_rows(workdir) == [["'a'", "2"]]

        # removing the log removes the state: the next start is a new app, no store wiped
        shutil.rmtree(tmp_path / ".streamlog")
        worker.start()
        send(workdir, "a", "3")
        assert len(read_topic(worker.kafka_url, "processed", at_least=1)) == 1
        assert worker.stop() == 0, worker.logs()
        assert "wiped" not in worker.logs()
        assert store_rows(workdir) == [["'a'", "1"]]
    finally:
        worker.kill()


@pytest.mark.timeout(90)
def test_a_store_kept_after_its_log_was_deleted_says_why_it_is_rebuilt(tmp_path):
    # an explicit datadir outside the log: deleting the log leaves the stores behind
    workdir, log_dir = str(tmp_path), tmp_path / "log"
    url = f"file://{log_dir}"
    worker = WorkerProcess(
        TABLECOUNT,
        url,
        workdir,
        extra_args=("--data-dir", str(tmp_path / "state")),
        env={"TABLECOUNT_STORE": "rocksdb://"},
    )
    try:
        worker.start()
        for value in ("1", "2", "3"):
            send(workdir, "a", value, "--broker", url)
        assert len(read_topic(worker.kafka_url, "processed", at_least=3)) == 3
        assert worker.stop() == 0, worker.logs()
        changelog = [r for r in read_topic(url, "tablecount-counts-changelog") if r.key]
        assert changelog, "the counts table wrote no changelog"
        last = changelog[-1]  # the record the store reflects
        name = f"tablecount-counts-changelog-{last.partition}"

        shutil.rmtree(log_dir)
        worker.start()
        assert worker.stop() == 0, worker.logs()
        expected = (
            f"table store for {name} discarded and rebuilt from its changelog because the "
            f"store is ahead of its changelog: it reflects changelog records up to offset "
            f"{last.offset}, but {name} is empty (no records, or no such topic). The "
            "changelog was deleted or recreated after the store was written (for example "
            "the log's directory was removed and the table stores were kept), so the store "
            "no longer matches it"
        )
        assert expected in worker.logs(), worker.logs()
    finally:
        worker.kill()
