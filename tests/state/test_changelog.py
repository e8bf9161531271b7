"""Changelog names, configs, and creating the topic over the embedded transport."""

from __future__ import annotations

import pytest

from streamlog.state.changelog import (
    changelog_configs,
    changelog_topic_name,
    ensure_changelog_topic,
)
from streamlog.state.errors import ChangelogError, ChangelogPartitionsError

from .conftest import run, started_transport


def test_names_are_app_table_changelog() -> None:
    assert changelog_topic_name("wordcount", "counts") == "wordcount-counts-changelog"
    assert changelog_topic_name("a.b_c", "t-1") == "a.b_c-t-1-changelog"


@pytest.mark.parametrize(
    ("app_id", "table", "message"),
    [
        ("", "t", "needs an app id and a table name"),
        ("app", "", "needs an app id and a table name"),
        ("app", "a b", "contains a character other than ASCII alphanumerics"),
        ("app", "x" * 240, "can't be longer than 249 characters"),
    ],
)
def test_names_that_make_no_topic_are_refused(app_id: str, table: str, message: str) -> None:
    with pytest.raises(ChangelogError, match=message):
        changelog_topic_name(app_id, table)


def test_configs_are_compacted_with_explicit_retention() -> None:
    assert changelog_configs() == {
        "cleanup.policy": "compact",
        "retention.ms": "-1",
        "retention.bytes": "-1",
    }
    assert changelog_configs(retention_ms=3_600_000, extra={"segment.bytes": "1048576"}) == {
        "cleanup.policy": "compact,delete",
        "retention.ms": "3600000",
        "retention.bytes": "-1",
        "segment.bytes": "1048576",
    }
    with pytest.raises(ValueError):
        changelog_configs(retention_ms=0)


def test_ensure_creates_the_topic_once_with_the_tables_partitions() -> None:
    async def body() -> None:
        async with started_transport() as transport:
            admin = transport.admin()
            info = await ensure_changelog_topic(admin, "app-t-changelog", 3)
            assert [p.partition for p in info.partitions] == [0, 1, 2]
            # the log reports overrides that differ from its defaults (retention.bytes
            # is -1 by default)
            assert info.configs == {"cleanup.policy": "compact", "retention.ms": "-1"}
            again = await ensure_changelog_topic(admin, "app-t-changelog", 3)
            assert again == info
            with pytest.raises(ChangelogPartitionsError, match="has 3 partitions, the table has 4"):
                await ensure_changelog_topic(admin, "app-t-changelog", 4)
            windowed = changelog_configs(retention_ms=60_000)
            info = await ensure_changelog_topic(admin, "app-w-changelog", 1, windowed)
            assert info.configs == {"cleanup.policy": "compact,delete", "retention.ms": "60000"}

    run(body())
