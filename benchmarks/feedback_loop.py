"""The feedback loop on a simulated market with a known shock: alarms, MAE, requests, speed.

A champion is trained on a year of the simulator's deals before its start. Then months of
traffic are generated from the same market, at ``--rate`` predictions per second of event
time: every prediction (the champion's price for a unit, with the features it used) and
what its user does next (the simulator's trust funnel: clicks, inquiries, and contracts at
the deal price, days later). One region's level falls 10% over three months, starting
after a stationary month. The traffic goes onto the real topics, phase by phase, and the
real stream worker (feature and feedback agents, in this process) drains it.

Printed: false alarms over the stationary month (goal ≤ 1 at the configured rate), events
from the shock's start to the first drift alarm (goal: river's ADWIN at defaults needs
about 375 residuals for a +20% step), the realized MAE before, during and after the shock
(from the loop's own tables), the retrain requests the loop published, and the agents'
throughput (events/s, one worker, everything running).

    .venv/bin/python benchmarks/feedback_loop.py [--rate 0.02] [--history 20000] [--window 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch.dataset import from_deals
from batch.train import run_training
from homeloop.db import connect
from homeloop.events import SCHEMA_VERSION, RetrainRequest
from homeloop.features import MARKET_FEATURES, MODEL_FEATURES, listing_feature_columns
from homeloop.market import Market
from homeloop.market.history import deal_history, lease_history
from homeloop.market.users import funnel, trust
from homeloop.model_store import load_alias
from homeloop.price_levels import day_start, market_features
from homeloop.settings import Settings
from homeloop.stack import LocalStack, provision
from streams.app import FeatureStreams
from tests.topics import read_topic_async

DAY = timedelta(days=1)
STATIONARY = 30 * DAY
SHOCK = 90 * DAY
AFTER = 30 * DAY
SHOCK_REGION = "41135"  # 분당구, the calibration's largest


def generate(market: Market, args: argparse.Namespace) -> dict[str, object]:
    """Training history and live traffic from one market, features by the training code.

    The market's deals go on after the start at the history's pace (they make the market
    features); the live rows are the units users ask prices for, at ``--rate``.
    """
    start = market.start
    end = start + STATIONARY + SHOCK + AFTER
    warm = start - 455 * DAY  # three months before the training year: market features warm
    per_day = args.history / 365
    history = deal_history(market, int(per_day * 455), warm, start, seed=1)
    future = deal_history(market, int(per_day * (end - start).days), start, end, seed=4)
    leases = lease_history(market, args.history // 2, warm, end, seed=3)
    trained = from_deals(history.drop(columns=["true_price"]), leases)
    training = trained.select((trained.times >= start - 365 * DAY).to_numpy())

    n_live = int(args.rate * (end - start).total_seconds())
    live = deal_history(market, n_live, start, end, seed=2)
    live["listing_id"] = [f"S{i:08d}" for i in range(n_live)]
    features = pd.DataFrame(np.nan, index=live.index, columns=list(MODEL_FEATURES))
    own, _ = listing_feature_columns(live, live["deal_time"])
    for name, values in own.items():
        features[name] = values
    deals = pd.concat([history, future], ignore_index=True).drop(columns=["true_price"])
    market_rows = live.assign(as_of=day_start(live["deal_time"]))
    levels = market_features(deals, leases, market_rows)
    for name in MARKET_FEATURES:
        features[name] = levels[name].to_numpy(np.float64)
    return {"training": training, "live": live, "features": features.to_numpy(np.float64)}


def traffic(
    live: pd.DataFrame,
    features: np.ndarray,
    predicted: np.ndarray,
    version: str,
    settings: Settings,
) -> list[tuple[datetime, str, bytes, bytes]]:
    """Each unit's listing, its prediction and what its user does next, as (time, topic,
    key, value), in event-time order."""
    rng = np.random.default_rng(11)
    n = len(live)
    true = live["true_price"].to_numpy()
    t = np.array([trust(p, tp) for p, tp in zip(predicted, true, strict=True)])
    p_click, p_inquiry, p_contract = funnel(t)  # type: ignore[arg-type]
    clicked = rng.random(n) < p_click
    inquired = clicked & (rng.random(n) < p_inquiry)
    contracted = inquired & (rng.random(n) < p_contract)
    contract_delay = rng.uniform(1, 10, n)  # days: labels arrive late
    names = list(MODEL_FEATURES)
    rows = live.to_dict("records")
    out: list[tuple[datetime, str, bytes, bytes]] = []
    for i in range(n):
        place = rows[i]
        at = place["deal_time"].to_pydatetime()
        listing_id = str(place["listing_id"])
        user_id = f"U{i % 5_000:05d}"
        prediction_id = uuid.uuid4()
        listed = at - DAY / 24  # the listing came first: its region is known to the loop
        out.append(
            (listed, "listings", listing_id.encode(), orjson.dumps({
                "event_id": uuid.uuid4(), "event_time": listed, "schema_version": SCHEMA_VERSION,
                **{k: place[k] for k in ("listing_id", "complex_id", "region_code", "dong",
                                         "lat", "lon", "area_sqm", "floor", "build_year",
                                         "asking_price")},
                "status": "listed", "source": "simulator",
            }, option=orjson.OPT_SERIALIZE_NUMPY))
        )  # fmt: skip
        out.append(
            (at, "predictions", listing_id.encode(), orjson.dumps({
                "event_id": uuid.uuid4(), "event_time": at, "schema_version": SCHEMA_VERSION,
                "prediction_id": prediction_id, "listing_id": listing_id, "user_id": user_id,
                "predicted_price": int(predicted[i]), "model_name": settings.model_name,
                "model_version": version, "variant": "champion",
                "features": {k: (None if v != v else float(v))
                             for k, v in zip(names, features[i], strict=True)},
                "latency_ms": 1.0,
            }))
        )  # fmt: skip
        steps = [("click", DAY / 24 / 60, clicked[i]), ("inquiry", DAY / 24, inquired[i])]
        steps.append(("contract", DAY * float(contract_delay[i]), contracted[i]))
        for kind, delay, happened in steps:
            if not happened:
                continue
            price = int(place["price"]) if kind == "contract" else None
            out.append(
                (at + delay, "user-events", listing_id.encode(), orjson.dumps({
                    "event_id": uuid.uuid4(), "event_time": at + delay,
                    "schema_version": SCHEMA_VERSION, "type": kind, "user_id": user_id,
                    "listing_id": listing_id, "prediction_id": prediction_id,
                    "contract_price": price,
                }))
            )  # fmt: skip
    out.sort(key=lambda item: item[0])
    return out


async def produce(settings: Settings, items: list[tuple[datetime, str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.require().kafka_bootstrap_servers, linger_ms=20
    )
    await producer.start()
    try:
        futures = [
            await producer.send(settings.topic(topic), value, key=key)
            for _, topic, key, value in items
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def stored(settings: Settings) -> tuple[int, int, int]:
    """Rows the worker has written: listings logged, predictions, user events decided."""
    with connect(settings) as conn:
        conn.execute(f'SET search_path TO "{settings.db_schema}"')
        row = conn.execute(
            "SELECT (SELECT count(*) FROM listing_features_log), "
            "(SELECT count(*) FROM served_predictions), "
            "(SELECT count(*) FROM outcome_events WHERE attributed_at IS NOT NULL)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


async def drain(
    settings: Settings, items: list[tuple[datetime, str, bytes, bytes]], alarms: list[object]
) -> float:
    """Run the worker until it has taken in every item produced so far; its drain time."""
    want = stored_before = stored(settings)
    counts = {t: sum(1 for i in items if i[1] == t) for t in ("listings", "predictions")}
    want = (
        stored_before[0] + counts["listings"],
        stored_before[1] + counts["predictions"],
        stored_before[2] + len(items) - counts["listings"] - counts["predictions"],
    )
    streams = FeatureStreams(settings)
    await streams.start()
    try:
        await asyncio.gather(*(agent.assigned.wait() for agent in streams.agents))
        started = time.perf_counter()  # timed from the group join on: consumption only
        while await asyncio.to_thread(stored, settings) != want:
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        assert streams.feedback is not None
        await streams.feedback.snapshot()
        alarms.extend(streams.feedback.alarms)
    finally:
        await streams.stop()
    print(f"  the worker took in {len(items):,} events in {elapsed:.1f} s: "
          f"{len(items) / elapsed:,.0f} events/s")  # fmt: skip
    return elapsed


def mae_by_phase(settings: Settings, bounds: list[tuple[str, datetime, datetime]]) -> None:
    with connect(settings) as conn:
        conn.execute(f'SET search_path TO "{settings.db_schema}"')
        for name, lo, hi in bounds:
            row = conn.execute(
                "SELECT avg(abs(e.contract_price - p.predicted_price)), count(*), "
                "avg(abs(e.contract_price - p.predicted_price)) FILTER "
                "(WHERE p.region_code = %s) FROM outcome_events e "
                "JOIN served_predictions p USING (prediction_id) "
                "WHERE e.type = 'contract' AND e.excluded IS NULL "
                "AND e.event_time >= %s AND e.event_time < %s",
                [SHOCK_REGION, lo, hi],
            ).fetchone()
            assert row is not None
            mae, n, region = row
            print(f"  {name:<28} MAE {mae or 0:>8,.0f}만원 over {n:>6,} contracts "
                  f"(shocked region {region or 0:,.0f})")  # fmt: skip


async def run(settings: Settings, args: argparse.Namespace) -> None:
    market = Market(seed=settings.simulator_seed)
    shock_start = market.start + STATIONARY
    market.shock(SHOCK_REGION, -0.10, shock_start, SHOCK)
    t0 = time.perf_counter()
    data = generate(market, args)
    live = data["live"]
    assert isinstance(live, pd.DataFrame)
    print(f"generated {len(live):,} live rows in {time.perf_counter() - t0:.1f} s")
    outcome = await asyncio.to_thread(run_training, settings, data["training"])
    print(f"champion v{outcome.version}: test MAE {outcome.metrics.get('test_mae', 0):,.0f}만원")
    champion = load_alias(settings)
    features = data["features"]
    assert isinstance(features, np.ndarray)
    predicted = np.rint(champion.model.predict(features)).astype(np.int64)
    items = traffic(live, features, predicted, champion.version, settings)
    phase_one = [item for item in items if item[0] < shock_start]
    phase_two = [item for item in items if item[0] >= shock_start]
    kinds = {
        t: sum(1 for i in items if i[1] == t) for t in ("listings", "predictions", "user-events")
    }
    print(f"traffic: {len(items):,} events {kinds} over "
          f"{(STATIONARY + SHOCK + AFTER).days} simulated days")  # fmt: skip

    alarms: list[tuple[datetime, str, str, dict[str, object]]] = []
    print("phase 1: a stationary month (produced, then the worker starts and drains it)")
    await produce(settings, phase_one)
    elapsed_one = await drain(settings, phase_one, alarms)  # type: ignore[arg-type]
    false_alarms = [(a[1], a[3].get("segment") or a[3].get("drifted")) for a in alarms]
    print(f"  false alarms in the stationary month: {len(false_alarms)} {false_alarms}")
    print("phase 2: the shock (-10% over 90 days in one region) and a month after "
          "(a restarted worker)")  # fmt: skip
    await produce(settings, phase_two)
    elapsed_two = await drain(settings, phase_two, alarms)  # type: ignore[arg-type]

    after = [a for a in alarms if a[0] >= shock_start]
    print(f"  alarms after the shock began: {len(after)}; the first ten:")
    for at, monitor, _, seen in after[:10]:
        what = (
            seen.get("drifted")
            or f"{seen.get('segment')} {seen.get('before', 0):+.3f} -> {seen.get('after', 0):+.3f}"
        )
        print(f"    day {(at - shock_start) / DAY:6.1f} {monitor:<9} {what}")
    served_times = live["deal_time"]
    for monitor in ("features", "residuals"):
        first = next((a for a in after if a[1] == monitor), None)
        if first is None:
            print(f"  {monitor}: no alarm after the shock")
            continue
        served = int(((served_times >= shock_start) & (served_times < first[0])).sum())
        contracts = count_contracts(settings, shock_start, first[0])
        print(f"  first {monitor} alarm {(first[0] - shock_start) / DAY:.1f} simulated days "
              f"into the shock, after {served:,} predictions and {contracts:,} contracts: "
              f"{first[3]}")  # fmt: skip
    with connect(settings) as conn:
        conn.execute(f'SET search_path TO "{settings.db_schema}"')
        how = conn.execute(
            "SELECT coalesce(attribution, 'undecided'), coalesce(excluded, 'counted'), count(*) "
            "FROM outcome_events GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    print(f"  user events by attribution and whether they count: {how}")
    adwin_baseline(settings, shock_start)
    print("realized MAE (|contract - shown price|), from the loop's tables:")
    mae_by_phase(settings, [
        ("before (stationary month)", market.start, shock_start),
        ("during (first half)", shock_start, shock_start + SHOCK / 2),
        ("during (second half)", shock_start + SHOCK / 2, shock_start + SHOCK),
        ("after", shock_start + SHOCK, shock_start + SHOCK + AFTER),
    ])  # fmt: skip
    published = await read_topic_async(settings, "retrain-requests", timeout=3.0)
    requests = [RetrainRequest.model_validate_json(v) for v in published]
    print(f"retrain requests published: {len(requests)}")
    for r in requests:
        shown = {k: r.evidence.get(k) for k in ("event_time", "rule", "value", "threshold")}
        print(f"  {r.reason:<16} {shown}")
    total = len(phase_one) + len(phase_two)
    print(f"agents' throughput, one worker, everything running: "
          f"{total / (elapsed_one + elapsed_two):,.0f} events/s")  # fmt: skip


def adwin_baseline(settings: Settings, shock_start: datetime) -> None:
    """The issue's baseline on the same realized residuals: river's ADWIN at defaults, on
    all contracts and on the shocked region's, in contract-time order."""
    from river import drift

    with connect(settings) as conn:
        conn.execute(f'SET search_path TO "{settings.db_schema}"')
        rows = conn.execute(
            "SELECT e.event_time, e.contract_price::float8 / p.predicted_price - 1, "
            "p.region_code FROM outcome_events e JOIN served_predictions p USING (prediction_id) "
            "WHERE e.type = 'contract' AND e.excluded IS NULL ORDER BY e.event_time"
        ).fetchall()
    for segment in ("all", SHOCK_REGION):
        stream = [(at, r) for at, r, region in rows if segment == "all" or region == segment]
        detector, false_alarms, first = drift.ADWIN(), 0, None
        for i, (at, residual) in enumerate(stream):
            detector.update(residual)
            if not detector.drift_detected:
                continue
            if at < shock_start:
                false_alarms += 1
            elif first is None:
                since = sum(1 for t, _ in stream[:i] if t >= shock_start)
                first = (at, since)
        found = (
            f"first alarm {(first[0] - shock_start) / DAY:.1f} days into the shock, "
            f"after {first[1]:,} of its contracts"
            if first
            else "no alarm after the shock"
        )
        print(f"  ADWIN defaults on {segment:>5} residuals: {false_alarms} false alarms in the "
              f"stationary month; {found}")  # fmt: skip


def count_contracts(settings: Settings, lo: datetime, hi: datetime) -> int:
    with connect(settings) as conn:
        conn.execute(f'SET search_path TO "{settings.db_schema}"')
        row = conn.execute(
            "SELECT count(*) FROM outcome_events WHERE type = 'contract' "
            "AND event_time >= %s AND event_time < %s",
            [lo, hi],
        ).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=0.02, help="predictions/s of event time")
    parser.add_argument("--history", type=int, default=20_000, help="training deals")
    parser.add_argument("--window", type=int, default=1_000, help="drift window (rows)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(Settings(environment="test", data_dir=Path(tmp)), Path(tmp)) as resolved,
    ):
        contracts_per_s = args.rate * 0.025  # the funnel's contract share, about 2.5%
        settings = resolved.model_copy(
            update={
                "topic_prefix": "fb.",
                "feast_project": "fb",
                "db_schema": "fb",
                "drift_rate_per_s": args.rate,
                "drift_window_size": args.window,
                "drift_contract_rate_per_s": contracts_per_s,
                "feedback_attribution_wait_s": 600.0,
            }
        )
        provision(settings, apply_features=False)
        print(f"rate {args.rate}/s of event time ({args.rate * 86400:,.0f} predictions a day), "
              f"drift window {args.window} rows, budget 1 false alarm a month")  # fmt: skip
        asyncio.run(run(settings, args))


if __name__ == "__main__":
    main()
