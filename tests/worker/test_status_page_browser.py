"""The worker's status page as a person sees it: a real ``streamlog worker`` process, its
page opened in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, which
``scripts/setup.sh`` installs) through Selenium. The page names the app and this worker,
lists the agents, tables and pages, and its counters follow the worker without a reload.
"""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from streamlog.cli.app_loader import load_app
from streamlog.transport import open_transport

from .workerproc import APPS, WorkerProcess, wait_until

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WEBVIEWS = os.path.join(APPS, "webviews.py")
WAIT = 20.0  # seconds, for the browser to show something


def browser(profile: str):  # type: ignore[no-untyped-def]
    """Headless Chromium with the flags this machine needs (no network beyond loopback:
    background networking off), a fresh profile, bounded page loads."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("chromium and chromedriver are not installed (scripts/setup.sh as root)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    return driver


def shown_texts(driver, css: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The text of every element matching ``css``, read in one script run: the page
    redraws its tables on every refresh, so an element found by one WebDriver call may be
    gone by the next (a stale element reference). Whitespace runs read as one space, as
    Selenium's ``.text`` shows a table row's cells."""
    raw = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText);", css
    )
    return [" ".join(t.split()) for t in raw]


def shown_text(driver, css: str) -> str:  # type: ignore[no-untyped-def]
    """The text of the first element matching ``css`` (see ``shown_texts``)."""
    texts = shown_texts(driver, css)
    assert texts, f"nothing on the page matches {css!r}"
    return texts[0]


def send_posts(kafka_url: str, words: list[str]) -> None:
    schema = load_app(WEBVIEWS).topics["posts"].schema

    async def send() -> None:
        transport = open_transport(kafka_url)
        await transport.start()
        try:
            producer = transport.producer(client_id="browser-test")
            pending = [
                await producer.send("posts", schema.dumps_value(w), key=schema.dumps_key(w))
                for w in words
            ]
            await producer.flush()
            for result in pending:
                await result
            await producer.close()
        finally:
            await transport.close()

    asyncio.run(asyncio.wait_for(send(), 60))


def test_status_page_in_a_browser(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser(str(tmp_path / "profile"))
    worker = WorkerProcess(
        WEBVIEWS, f"file://{tmp_path / 'log'}", str(tmp_path), extra_args=("--web-port", "0")
    )
    try:
        worker.start()
        match = worker.wait_for_log(r"web endpoint on (http://127\.0\.0\.1:\d+)")
        url = match.split(" on ", 1)[1]
        driver.get(url + "/")
        text = lambda css: shown_text(driver, css)  # noqa: E731

        assert driver.title == "webviews · streamlog worker"
        assert text("h1") == "webviews running"
        assert text("#state") == "running"
        assert text("#url") == url
        assert text("#records-fetched") == "0"
        agents = shown_texts(driver, "#agents tbody tr")
        assert agents == ["webviews.count_words 0 - 0 0"]  # events, events/s, errors, dead
        assert text("#tables tbody tr[data-table='word_counts'] .partitions") == "0, 1, 2, 3"
        assert text("#tables tbody tr[data-table='word_counts'] .keys") == "0"
        bars = driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]),"
            " b => [b.getAttribute('value'), b.getAttribute('max')]);",
            "tr[data-table='word_counts'] progress",
        )
        assert [tuple(b) for b in bars] == [
            ("1", "1")
        ] * 4  # nothing to replay: every partition's recovery complete
        assert text("#workers tr.me") == (
            f"{url} (this worker) posts[0], posts[1], posts[2], posts[3] -"
        )  # alone: no standby partitions
        pages = shown_texts(driver, "#pages li")
        assert pages == [
            "/count/{word}/",
            "/partition/{word}/",
            "/greet/{name}/",
            "/counter/",
            "/version",
        ]

        # the counters follow the worker without a reload
        send_posts(worker.kafka_url, ["fox", "dog", "fox", "cat", "fox"])
        WebDriverWait(driver, WAIT).until(lambda d: text("#records-fetched") == "5")
        WebDriverWait(driver, WAIT).until(lambda d: int(text("#commits")) >= 1)
        row = "#agents tbody tr[data-agent='webviews.count_words']"
        WebDriverWait(driver, WAIT).until(lambda d: text(f"{row} .events") == "5")
        # the rate is counted between two reads: none come in any more
        WebDriverWait(driver, WAIT).until(lambda d: text(f"{row} .rate") == "0.0")
        WebDriverWait(driver, WAIT).until(
            lambda d: text("#tables tbody tr[data-table='word_counts'] .keys") == "3"
        )
        assert text("#updated") != "at load"
        driver.save_screenshot(str(tmp_path / "status.png"))

        # a person follows the link to one of the app's pages
        driver.find_element(By.LINK_TEXT, "/counter/").click()
        WebDriverWait(driver, WAIT).until(lambda d: d.current_url == url + "/counter/")
        assert '"count":0' in driver.find_element(By.TAG_NAME, "body").text.replace(" ", "")

        # the worker stops: the page says it cannot reach it
        driver.back()
        WebDriverWait(driver, WAIT).until(lambda d: text("#state") == "running")
        assert worker.stop() == 0, worker.logs()
        WebDriverWait(driver, WAIT).until(lambda d: text("#state") == "unreachable")
    finally:
        driver.quit()
        worker.kill()


def test_status_page_follows_a_rebalance(tmp_path):
    """Two workers on a real ``streamlog broker``: the first worker's page, opened while
    it is alone, shows it holding every partition; a second worker joins, and the same
    page (never reloaded: a mark set in the window survives) shows both workers and the
    split the group agreed on, as each worker's ``/router/`` gives it, and each worker
    keeping the other's partitions warm as a standby (the app has a table)."""
    import json
    import urllib.request

    from selenium.webdriver.support.ui import WebDriverWait

    from tests.broker.brokerproc import BrokerProcess

    broker = BrokerProcess(
        str(tmp_path / "broker"), ("--group-initial-rebalance-delay-ms", "0")
    ).start()
    driver = None
    workers = []
    try:
        driver = browser(str(tmp_path / "profile"))
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            workers.append(
                WorkerProcess(
                    WEBVIEWS,
                    f"kafka://{broker.bootstrap}",
                    str(tmp_path / name),
                    extra_args=("--web-port", "0"),
                )
            )
        a, b = workers
        a.start()
        url_a = a.wait_for_log(r"web endpoint on (http://127\.0\.0\.1:\d+)").split(" on ", 1)[1]
        driver.get(url_a + "/")
        text = lambda css: shown_text(driver, css)  # noqa: E731

        def worker_rows() -> list[str]:
            return shown_texts(driver, "#workers tbody tr")

        alone = f"{url_a} (this worker) posts[0], posts[1], posts[2], posts[3] -"
        WebDriverWait(driver, WAIT).until(lambda d: worker_rows() == [alone])
        assert text("#assignment").startswith("posts[0], posts[1], posts[2], posts[3]")
        driver.execute_script("window.notReloaded = true;")
        driver.save_screenshot(str(tmp_path / "alone.png"))

        b.start()
        url_b = b.wait_for_log(r"web endpoint on (http://127\.0\.0\.1:\d+)").split(" on ", 1)[1]

        def split() -> dict[str, list[int]] | None:
            """Each worker's share of posts once both hold one, as /router/ says."""
            with urllib.request.urlopen(f"{url_a}/router/", timeout=10) as answer:
                mapping = json.load(answer)
            if set(mapping) != {url_a, url_b}:
                return None
            shares = {u: held for u, topics in mapping.items() for held in topics.values()}
            return shares if all(shares.values()) else None

        shares = wait_until(split, 60, "the group to split the partitions between a and b")
        assert sorted(shares[url_a] + shares[url_b]) == [0, 1, 2, 3]

        def listed(url: str) -> str:
            return ", ".join(f"posts[{n}]" for n in shares[url])

        def standby(url: str) -> str:  # the other's partitions (one standby replica)
            return ", ".join(str(n) for n in shares[url_b if url == url_a else url_a])

        expected = sorted(
            [
                f"{url_a} (this worker) {listed(url_a)} {standby(url_a)}",
                f"{url_b} {listed(url_b)} {standby(url_b)}",
            ]
        )
        WebDriverWait(driver, WAIT).until(lambda d: sorted(worker_rows()) == expected)
        WebDriverWait(driver, WAIT).until(lambda d: text("#assignment").startswith(listed(url_a)))
        assert int(text("#rebalances")) >= 2
        assert driver.execute_script("return window.notReloaded === true;")
        assert text("#workers tr.me") == f"{url_a} (this worker) {listed(url_a)} {standby(url_a)}"
        hrefs = driver.execute_script(
            "return Array.from(document.querySelectorAll('#workers a'), a => a.href);"
        )
        assert url_b + "/" in hrefs
        shot = tmp_path / "rebalanced.png"
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        for worker in (b, a):
            assert worker.stop() == 0, worker.logs()
    finally:
        if driver is not None:
            driver.quit()
        for worker in workers:
            worker.kill()
        broker.stop()
