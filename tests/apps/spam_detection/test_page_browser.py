"""The spam app's live page as a person sees it: a real worker on a real broker, fed the
hand-built scenario, its page ``/spam/`` opened in headless Chromium; the flagged users
with their scores and reasons are listed, and the search box filters them."""

from __future__ import annotations

import pytest

from tests.broker.brokerproc import NO_REBALANCE_DELAY, BrokerProcess
from tests.worker.test_status_page_browser import WAIT, browser, shown_text

from .harness import send, start_worker, wait_processed
from .test_app import hand_built

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

RING = [f"ring{i}" for i in range(6)]


def test_flagged_users_page_in_a_browser(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser(str(tmp_path / "profile"))
    broker = BrokerProcess(str(tmp_path / "broker"), NO_REBALANCE_DELAY).start()
    worker = None
    try:
        url = f"kafka://{broker.bootstrap}"
        worker = start_worker(url, str(tmp_path / "w"))
        web = worker.wait_for_log(r"web endpoint on (http://127\.0\.0\.1:\d+)").split(" on ")[1]
        users, pins = hand_built()
        send(url, users, pins)
        wait_processed(url, len(users), len(pins))

        driver.get(web + "/spam/")
        assert driver.title == "streamlog spam detection"

        def rows() -> dict[str, list[str]]:
            # read in one script run: the page redraws its rows on every refresh
            found = driver.execute_script(
                "return Array.from(document.querySelectorAll('#rows tr'), tr =>"
                " [tr.getAttribute('data-user'),"
                "  Array.from(tr.querySelectorAll('td'), td => td.innerText.trim())]);"
            )
            return {user: cells for user, cells in found}

        expected = sorted(["burster", "copier", "disliked", *RING])
        WebDriverWait(driver, WAIT).until(lambda d: sorted(rows()) == expected)
        shown = rows()
        assert shown["burster"][1:4] == ["0.50", "burst", "1"]  # flagged at its 30th create
        assert shown["copier"][2] == "duplicate_text"
        assert shown["disliked"][2] == "reports"
        assert all(shown[u][2] == "domain_ring" for u in RING)
        # the first five are flagged as the ring reaches five (0.5), a sixth joining at 0.6
        assert sorted(shown[u][1] for u in RING) == ["0.50"] * 5 + ["0.60"]
        count = shown_text(driver, "#count")
        assert count == f"{len(expected)} of {len(expected)} flagged user(s)"
        driver.save_screenshot(str(tmp_path / "spam-page.png"))

        search = driver.find_element(By.ID, "search")
        search.send_keys("ring")
        WebDriverWait(driver, WAIT).until(lambda d: sorted(rows()) == RING)
        search.clear()
        search.send_keys("report")
        WebDriverWait(driver, WAIT).until(lambda d: sorted(rows()) == ["disliked"])
        assert shown_text(driver, "#count") == f"1 of {len(expected)} flagged user(s)"
        assert worker.stop() == 0, worker.logs()
    finally:
        driver.quit()
        if worker is not None:
            worker.kill()
        broker.stop()
