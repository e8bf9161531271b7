"""The README's word count, as the README writes it, run by two worker processes on one
``streamlog broker``: every word is counted exactly (``WORD=1`` .. ``WORD=N`` once each),
whichever worker owns its partition."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tests.broker.brokerproc import BrokerProcess
from tests.docs.test_readme import readme_blocks
from tests.worker.workerproc import WorkerProcess, read_topic, read_values, run_cli, wait_until

VOCABULARY = "the cat the dog a bird and the end of a day".split()
LINES = [
    " ".join(VOCABULARY[(i * 7 + j) % len(VOCABULARY)] for j in range(i % 5 + 1)) for i in range(40)
]


def assigned_words(worker: WorkerProcess) -> set[int]:
    """The ``words`` partitions the worker holds now (its latest "holding" line)."""
    holding = re.findall(r"holding partitions: (.*)", worker.logs())
    found = re.search(r"\bwords \[([\d, ]*)\]", holding[-1]) if holding else None
    return {int(p) for p in found[1].split(", ")} if found and found[1] else set()


@pytest.mark.timeout(180)
def test_the_readme_word_count_is_exact_with_two_workers(tmp_path):
    [app] = [b for b in readme_blocks() if b.file == "wordcount.py"]
    (tmp_path / "wordcount.py").write_text(app.code)
    broker = BrokerProcess(
        str(tmp_path / "broker"), extra_args=("--group-initial-rebalance-delay-ms", "0")
    ).start()
    url = f"kafka://{broker.bootstrap}"
    first = WorkerProcess("wordcount.py", url, str(tmp_path / "one"))
    second = WorkerProcess("wordcount.py", url, str(tmp_path / "two"))
    for worker in (first, second):
        (tmp_path / worker.workdir).mkdir()
        (tmp_path / worker.workdir / "wordcount.py").write_text(app.code)
    try:
        first.start()
        second.start()
        # the partitions are split: each worker owns some of `words`, none owns all
        wait_until(
            lambda: assigned_words(first) and assigned_words(second)
            and not assigned_words(first) & assigned_words(second)
            and len(assigned_words(first) | assigned_words(second)) == 8,
            60, "words split between the two workers",
        )  # fmt: skip
        out = run_cli("produce", "lines", "--broker", url, input="\n".join(LINES) + "\n")
        assert out.returncode == 0, out.stderr
        total = Counter(word for line in LINES for word in line.split())
        read_topic(url, "totals", at_least=sum(total.values()), timeout=90)
        assert first.stop() == 0, first.logs()
        assert second.stop() == 0, second.logs()
        values = read_values(url, "totals")  # all of it, once both stopped
    finally:
        first.kill()
        second.kill()
        code = broker.stop()
    assert code == 0, broker.logs()
    expected = sorted(f"{word}={n}" for word, count in total.items() for n in range(1, count + 1))
    assert values == expected
    assert "PartitionNotOwnedError" not in first.logs() + second.logs()
