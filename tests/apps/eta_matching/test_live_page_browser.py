"""The ETA app's live page in headless Chromium: a real worker fed by the generator; the
page shows the matches per minute, the unmatched reasons and the surge/speed map, drawn by
the page itself, and agrees with the worker's /eta/data/ answer."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request

import pytest

from apps.eta_matching import generate
from tests.worker.test_status_page_browser import WAIT, browser, shown_texts
from tests.worker.workerproc import WorkerProcess

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
APP = os.path.join(ROOT, "apps", "eta_matching", "app.py")


def test_live_page_shows_matches_reasons_and_the_area_map(tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser(str(tmp_path / "profile"))
    worker = WorkerProcess(
        APP,
        f"file://{tmp_path / 'log'}",
        str(tmp_path),
        env={"PYTHONPATH": ROOT},
        extra_args=("--web-port", "0"),
    )
    try:
        worker.start()
        url = worker.wait_for_log(r"web endpoint on (http://127\.0\.0\.1:\d+)").split(" on ", 1)[1]
        # few drivers far apart and many requests: some are matched, some are not
        argv = ["--rate", "6", "--duration", "6", "--seed", "9", "--drivers", "8"]
        argv += ["--time-scale", "10", "--broker", worker.kafka_url]
        sent = asyncio.run(asyncio.wait_for(generate.main(argv), 60))["sent"]
        driver.get(url + "/eta/")
        assert driver.title == "Ride ETA and matching"

        def cells(css):  # type: ignore[no-untyped-def]
            return shown_texts(driver, css)

        def answered():  # type: ignore[no-untyped-def]
            with urllib.request.urlopen(url + "/eta/data/", timeout=5) as r:
                data = json.load(r)
            return sum(p["matched"] + p["unmatched"] for p in data["per_minute"]), data

        WebDriverWait(driver, WAIT).until(lambda d: answered()[0] == sent["ride_requests"])
        total, data = answered()
        # the page's tables show what the worker says, after its next refresh
        want_areas = [a["area"] for a in data["areas"]]

        def shown():  # type: ignore[no-untyped-def]
            rows = [r.split() for r in cells("#minutes tbody tr")]
            return (
                sum(int(r[1]) + int(r[2]) for r in rows) == total
                and [r.split()[0] for r in cells("#areas tbody tr")] == want_areas
            )

        WebDriverWait(driver, WAIT).until(lambda d: shown())
        rows = [r.split() for r in cells("#minutes tbody tr")]
        assert sum(int(r[1]) + int(r[2]) for r in rows) == total == sent["ride_requests"]
        reasons = {li.split(": ")[0]: int(li.split(": ")[1]) for li in cells("#reasons li")}
        assert reasons == data["reasons"] and reasons  # 8 drivers cannot take 36 requests
        assert sum(reasons.values()) == sum(int(r[2]) for r in rows)
        assert all(1.0 <= float(r.split()[1]) <= 3.0 for r in cells("#areas tbody tr"))
        # the map is drawn: the canvas has painted pixels
        painted = driver.execute_script(
            "const c = document.getElementById('map');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;"
        )
        assert painted > 1000
        shot = os.environ.get("ETA_SCREENSHOT", str(tmp_path / "eta.png"))
        driver.save_screenshot(shot)
        assert os.path.getsize(shot) > 0
        assert worker.stop() == 0, worker.logs()
    finally:
        driver.quit()
        worker.kill()
