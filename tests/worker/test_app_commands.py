"""``streamlog send`` and ``streamlog agents`` over sample apps, and how every command that
loads an app reports a bad APP argument: one ``Error:`` line, exit code 1."""

from __future__ import annotations

import json
import os

import pytest

from streamlog.log.partitioner import partition_for_key

from .workerproc import APPS, read_topic, run_cli

WORDCOUNT = os.path.join(APPS, "wordcount.py")
POLICIES = os.path.join(APPS, "policies.py")


def ok(*args: str, cwd=None) -> list[str]:
    out = run_cli(*args, cwd=cwd)
    assert out.returncode == 0, f"{args}: exit {out.returncode}\n{out.stderr}"
    assert out.stderr == "", out.stderr
    return out.stdout.splitlines()


def test_send_to_a_file_log_without_a_worker(tmp_path):
    url = f"file://{tmp_path / 'log'}"
    k1 = partition_for_key(b"k1", 4)  # the app declares words with 4 partitions
    assert ok("send", WORDCOUNT, "words", "hello world", "--key", "k1", "--broker", url) == [
        f"words[{k1}]@0"
    ]
    # an agent's name stands for its topic; --repeat sends the same record again
    assert ok("send", WORDCOUNT, "count", "bye", "-k", "k1", "-r", "2", "--broker", url) == [
        f"words[{k1}]@1",
        f"words[{k1}]@2",
    ]
    records = read_topic(url, "words")
    assert [(r.partition, r.offset, r.key, r.value) for r in records] == [
        (k1, 0, b"k1", b"hello world"),
        (k1, 1, b"k1", b"bye"),
        (k1, 2, b"k1", b"bye"),
    ]
    # a JSON topic: VALUE is parsed as JSON and checked against the topic's value type
    assert ok("send", f"{POLICIES}:dlq_app", "jobs", "7", "--broker", url) == ["jobs[0]@0"]
    [job] = read_topic(url, "jobs")
    assert (job.key, job.value) == (None, b"7")
    out = run_cli("send", f"{POLICIES}:dlq_app", "jobs", "seven", "--broker", url)
    assert (out.returncode, out.stdout, out.stderr) == (
        1,
        "",
        "Error: cannot send to jobs: value 'seven': int: expected int, got str\n",
    )
    assert len(read_topic(url, "jobs")) == 1


def test_agents_table_and_json():
    assert ok("agents", WORDCOUNT) == [
        "AGENT            TOPIC  CONCURRENCY  SINKS   ON ERROR  HELP",
        "wordcount.count  words  1            counts  crash     Counts the words of each line.",
    ]
    assert [json.loads(line) for line in ok("agents", WORDCOUNT, "--json")] == [
        {
            "name": "wordcount.count",
            "topic": "words",
            "concurrency": 1,
            "sinks": ["counts"],
            "on_error": "crash",
            "help": "Counts the words of each line.",
        }
    ]
    # module:attr, imported from the current directory
    assert ok("agents", "policies:crash_app", cwd=APPS) == [
        "AGENT  TOPIC  CONCURRENCY  SINKS  ON ERROR  HELP",
        "work   jobs   1            done   crash     Doubles each job; negative jobs fail.",
    ]
    assert ok("agents", os.path.join(APPS, "no_app.py").replace("no_app", "echo")) == [
        "AGENT      TOPIC  CONCURRENCY  SINKS   ON ERROR  HELP",
        "echo.copy  ids    1            echoed  crash     Copies each id to echoed.",
    ]


LOAD_ERRORS = [
    ("no_app.py", "no streamlog.App found in no_app.py (define app = streamlog.App(...))"),
    (
        "policies.py",
        "policies.py defines several Apps (crash_app, dlq_app, restart_app): "
        "name one, e.g. policies.py:crash_app",
    ),
    ("policies.py:nope", "policies.py has no App named 'nope'"),
    ("policies.py:SETTINGS", "policies.py has no App named 'SETTINGS' (SETTINGS is a dict)"),
    ("policies:nope", "policies has no App named 'nope'"),
    ("missing.py", "no such file: missing.py"),
    ("nomodule:app", "no module named 'nomodule' (give app.py or module:attr)"),
    # an exception raised by the app's own code: its type, message and line
    (
        "bad_setting.py",
        "cannot import bad_setting.py: ImproperlyConfigured: topic_partitions must be >= 1, "
        f"not 0 (at {APPS}/bad_setting.py:5)",
    ),
    (
        "broken_import:app",
        "cannot import broken_import: ModuleNotFoundError: No module named "
        f"'streamlog_test_no_such_dependency' (at {APPS}/broken_import.py:3)",
    ),
]


@pytest.mark.parametrize("spec,message", LOAD_ERRORS, ids=[s for s, _ in LOAD_ERRORS])
def test_app_loading_errors_are_one_line(spec, message):
    out = run_cli("agents", spec, cwd=APPS)
    assert (out.returncode, out.stdout, out.stderr) == (1, "", f"Error: {message}\n")


@pytest.mark.parametrize("command", [("worker",), ("send",)], ids=["worker", "send"])
def test_worker_and_send_report_a_bad_app_the_same_way(tmp_path, command):
    extra = ("words", "x") if command == ("send",) else ()
    out = run_cli(*command, "missing.py", *extra, "--broker", f"file://{tmp_path}", cwd=APPS)
    assert (out.returncode, out.stdout, out.stderr) == (1, "", "Error: no such file: missing.py\n")
    out = run_cli(*command, "policies.py", *extra, "--broker", f"file://{tmp_path}", cwd=APPS)
    assert out.returncode == 1
    assert out.stderr.startswith("Error: policies.py defines several Apps"), out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
