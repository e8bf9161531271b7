"""Ride ETA and driver matching: ``streamlog worker apps/eta_matching/app.py``.

Inputs ``driver_locations`` (key driver id), ``ride_requests`` (key request id) and
``trips_completed`` (key driver id); output ``matches`` (key request id), one per request.
Two internal steps keep a driver claimable by one worker only (see ``routing.py`` and
docs/apps.md): ``eta-driver-events`` keyed by driver id (the router) and
``eta-region-events`` keyed by h3 region (the fleets, which match).

Settings from the environment: ``ETA_BROKER`` (default ``file://./.streamlog``),
``ETA_PARTITIONS`` (default 4), ``ETA_APP_ID`` (default ``eta-matching``),
``ETA_REGION_RES`` (h3 resolution of a region, default 4; 5 splits a city among more workers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlog
from apps.eta_matching import geo
from apps.eta_matching.answers import TableAnswers
from apps.eta_matching.routing import BadEventError, DriverRouter, RegionDispatcher
from apps.eta_matching.rules import MatchRules
from apps.eta_matching.stats import LiveStats
from apps.eta_matching.windows import TableAreaWindows

PAGE_HTML = (Path(__file__).parent / "page.html").read_text()

log = logging.getLogger(__name__)


def _request_of(value: Any) -> dict[str, Any]:
    """A validated ride request (numbers as floats), or BadEventError."""
    try:
        request: dict[str, Any] = {
            "request_id": str(value["request_id"]),
            "rider_id": str(value["rider_id"]),
            "ts": float(value["ts"]),
        }
        for name in ("pickup_lat", "pickup_lon", "dropoff_lat", "dropoff_lon"):
            request[name] = float(value[name])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadEventError(f"bad ride request {value!r}: {exc}") from exc
    for lat, lon in (("pickup_lat", "pickup_lon"), ("dropoff_lat", "dropoff_lon")):
        # also refuses NaN and infinities, whose comparisons are false
        if not (-90 <= request[lat] <= 90 and -180 <= request[lon] <= 180):
            raise BadEventError(f"position out of range in ride request {value!r}")
    return request


def _driver_event(kind: str) -> Callable[[Any], dict[str, Any] | None]:
    """A map from a ``driver_locations``/``trips_completed`` value to the router's event;
    a value that is not an object naming its driver is skipped, with a warning."""

    def forward(value: Any) -> dict[str, Any] | None:
        if not isinstance(value, dict) or "driver_id" not in value:
            log.warning(
                "skipping a %s event that is not an object with a driver_id: %r", kind, value
            )
            return None
        return {"kind": kind, "driver_id": str(value["driver_id"]), "value": value}

    forward.__name__ = forward.__qualname__ = f"forward_{kind}"
    return forward


def build_app(
    broker: str | None = None,
    partitions: int | None = None,
    app_id: str | None = None,
    rules: MatchRules | None = None,
    **settings: Any,
) -> streamlog.App:
    """The app; tests build their own with other ids and brokers."""
    app_id = app_id or os.environ.get("ETA_APP_ID", "eta-matching")
    partitions = partitions or int(os.environ.get("ETA_PARTITIONS", "4"))
    settings.setdefault("broker_commit_interval", 0.2)
    settings.setdefault("broker_session_timeout", 6.0)
    app = streamlog.App(
        app_id,
        broker=broker or os.environ.get("ETA_BROKER", "file://./.streamlog"),
        topic_partitions=partitions,
        **settings,
    )
    prefix = os.environ.get("ETA_TOPIC_PREFIX", "")
    driver_locations = app.topic(f"{prefix}driver_locations", value_type=dict)
    ride_requests = app.topic(f"{prefix}ride_requests", value_type=dict)
    trips_completed = app.topic(f"{prefix}trips_completed", value_type=dict)
    matches = app.topic(f"{prefix}matches", value_type=dict)
    driver_events = app.topic(f"{app_id}-eta-driver-events", key_type=str, value_type=dict)
    region_events = app.topic(f"{app_id}-eta-region-events", key_type=str, value_type=dict)
    if rules is None:
        rules = MatchRules(region_res=int(os.environ.get("ETA_REGION_RES", "4")))
    # All state is in changelogged tables (docs/apps.md, "State"): a worker that takes a
    # partition over, after a restart or in a rebalance, recovers it from the changelogs.
    # The router's table is keyed by driver id (the partition of driver_events); the
    # fleet's tables by region-prefixed keys, so they live in the region's partition.
    owners = app.Table("eta-driver-owners", key_type=str, help="driver -> region, seq")
    size, step = rules.window_size_s, rules.window_step_s
    windows = TableAreaWindows(
        app.Table("eta-area-speeds", default=list, key_type=str).hopping(size, step, expires=size),
        app.Table("eta-area-demand", default=int, key_type=str).hopping(size, step, expires=size),
        size,
        step,
    )
    router = DriverRouter(owners, region_res=rules.region_res)
    regions = app.Table("eta-fleet-regions", key_type=str, help="region -> count, areas")
    dispatcher = RegionDispatcher(
        rules,
        drivers=app.Table("eta-fleet-drivers", key_type=str, help="region|driver -> driver"),
        cells=app.Table("eta-fleet-cells", key_type=str, help="region|h3 cell -> driver ids"),
        regions=regions,
        waiting=app.Table("eta-fleet-waiting", key_type=str, help="region|driver -> events"),
        answers=TableAnswers(
            app.Table("eta-answers", default=dict, key_type=str).tumbling(
                rules.answers_kept_s, expires=rules.answers_kept_s
            )
        ),
        windows=windows,
    )
    stats = LiveStats(dispatcher, windows, regions)

    @app.page("/eta/")
    async def live_page(web: Any, request: Any) -> Any:
        """The live page: drawn in the browser from /eta/data/ (no external scripts)."""
        return web.html(PAGE_HTML)

    @app.page("/eta/data/")
    async def live_data(web: Any, request: Any) -> Any:
        return web.json(stats.snapshot())

    for source, kind, name in (
        (driver_locations, "location", "forward_location"),
        (trips_completed, "completed", "forward_completion"),
    ):
        # keyed by the driver the value names: its locations and completions meet, in
        # order, in one stream (the router's)
        app.map(source, to=driver_events, key=lambda out: out["driver_id"], name=name)(
            _driver_event(kind)
        )

    @app.map(ride_requests, to=region_events, key=lambda out: out["region"], name="route_request")
    def route_request(value: Any) -> dict[str, Any] | None:
        """Sends each request to the region of its pickup."""
        try:
            request = _request_of(value)
            region = geo.region_of(request["pickup_lat"], request["pickup_lon"], rules.region_res)
        except (BadEventError, ValueError) as exc:
            log.warning("skipping: %s", exc)
            return None
        return {"kind": "request", "region": region, "request": request}

    @app.agent(driver_events, name="route_drivers")
    async def route_drivers(stream: Any) -> None:
        """Owns each driver's region; hands drivers from region to region."""
        async for event in stream.events():
            value = event.value
            position = (event.message.partition, event.message.offset)
            try:
                if value["kind"] == "location":
                    out = router.location(value["value"], position)
                else:
                    out = router.completed(value["value"], position)
            except (BadEventError, KeyError, TypeError) as exc:
                log.warning("skipping: %s", exc)
                continue
            for region, region_event in out:
                await region_events.send(
                    key=region, value=region_event, timestamp=event.message.timestamp
                )

    @app.agent(region_events, name="match_in_region")
    async def match_in_region(stream: Any) -> None:
        """The fleets: applies driver events and answers each request exactly once."""
        async for event in stream.events():
            decided: list[dict[str, Any]] = []
            position = (event.message.partition, event.message.offset)
            out = dispatcher.handle(str(event.key), event.value, decided.append, position)
            for region, region_event in out:
                await region_events.send(
                    key=region, value=region_event, timestamp=event.message.timestamp
                )
            for match in decided:
                stats.record(match)
                await matches.send(
                    key=match["request_id"], value=match, timestamp=float(match["ts"])
                )

    return app


app = build_app()
