"""The feedback loop on the real broker, PostgreSQL and MLflow: outcomes, error, triggers.

A champion is trained and registered (with its training reference); predictions and user
events go through the topics; the loop's tables, its `monitoring` snapshot, and what it
published on `retrain-requests`, `alerts` and `dead-letter` are checked against figures
computed here from the events themselves.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from batch.labels import contract_labels
from batch.train import run_training
from homeloop.db import connect
from homeloop.events import (
    AlertEvent,
    DeadLetterEvent,
    Event,
    MonitoringEvent,
    PredictionEvent,
    RetrainRequest,
    UserEvent,
)
from homeloop.model_store import load_reference
from homeloop.settings import Settings
from homeloop.stack import provision
from streams.app import FeatureStreams
from tests.conftest import drop_schema, isolated
from tests.factories import listing_event, synthetic_deals
from tests.streams.test_feature_streams import _produce
from tests.topics import read_topic

pytestmark = pytest.mark.integration

PREDICTED = 100_000


@pytest.fixture(scope="module")
def trained(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A champion (v1) with its training reference, in a module-wide MLflow store."""
    settings = isolated(stack_settings, tmp_path_factory.mktemp("feedback") / "data")
    provision(settings, apply_features=False)
    run_training(settings, synthetic_deals(3_000))
    return settings


@pytest.fixture
def loop_settings(trained: Settings, tmp_path: Path) -> Iterator[Settings]:
    """Own topics and tables per test, the module's model registry; fast windows."""
    mine = isolated(trained, trained.data_dir).model_copy(
        update={
            "feedback_attribution_days": 1.0,
            "feedback_attribution_wait_s": 1.0,
            "feedback_snapshot_s": 0.5,
            "drift_window_size": 200,
        }
    )
    provision(mine, apply_features=False)
    yield mine
    drop_schema(mine)


def predictions(
    settings: Settings, n: int, start: datetime, shift: float = 1.0, price: float | None = None
) -> list[PredictionEvent]:
    """``n`` champion predictions whose features are training rows (``shift`` scales the area
    and the price); at ``price`` when given, else at the model's own prediction."""
    sample = load_reference(settings, "1").sample
    rows = sample.sample(n, random_state=n)  # across its time
    events = []
    for i, row in enumerate(rows.to_dict("records")):
        shown = price if price is not None else row["prediction"] * shift
        del row["prediction"]
        features = {k: (None if v != v else float(v)) for k, v in row.items()}
        features["area_sqm"] = (features["area_sqm"] or 60.0) * shift
        events.append(
            PredictionEvent(
                event_time=start + timedelta(minutes=i),
                prediction_id=uuid.uuid4(),
                listing_id=f"P{i}",
                user_id=f"U{i}",
                predicted_price=round(shown),
                model_name=settings.model_name,
                model_version="1",
                features=features,
                latency_ms=1.0,
            )
        )
    return events


def reaction(p: PredictionEvent, kind: str, price: int | None = None, **extra: object) -> UserEvent:
    fields: dict[str, object] = dict(
        type=kind,
        user_id=p.user_id,
        listing_id=p.listing_id,
        prediction_id=p.prediction_id,
        event_time=p.event_time + timedelta(minutes=1),
        contract_price=price,
    )
    fields.update(extra)
    return UserEvent.model_validate(fields)


def to(topic: str, events: Sequence[Event]) -> list[tuple[str, bytes | None, bytes]]:
    return [(topic, getattr(e, "listing_id", "k").encode(), e.to_bytes()) for e in events]


async def caught_up(streams: FeatureStreams, deadline: float) -> None:
    """Until the loop has taken in everything produced so far and decided it."""
    loop = streams.feedback
    assert loop is not None
    while True:
        await asyncio.sleep(0.5)
        lags = await streams._lags()
        if not any(lags.values()) and await loop.store.undecided() == 0:
            return
        assert time.monotonic() < deadline, f"the agents did not catch up: {lags}"


def run_streams(
    settings: Settings,
    waves: Sequence[Sequence[tuple[str, bytes | None, bytes]]],
    done: Callable[[FeatureStreams], bool],
    timeout: float = 60.0,
) -> FeatureStreams:
    """Produce each wave once the agents caught up with the one before; stop when done."""

    async def run() -> FeatureStreams:
        streams = FeatureStreams(settings)
        await streams.start()
        try:
            deadline = time.monotonic() + timeout
            for wave in waves:
                await _produce(settings, wave)
                await caught_up(streams, deadline)
            while not done(streams):
                snapshot = streams.feedback.last_snapshot if streams.feedback else None
                assert time.monotonic() < deadline, f"the loop did not get there: {snapshot}"
                await asyncio.sleep(0.2)
        finally:
            await streams.stop()
        return streams

    return asyncio.run(run())


def decoded(settings: Settings, topic: str, model: type[Event], want: int | None = None) -> list:  # type: ignore[type-arg]
    return [model.model_validate_json(v) for v in read_topic(settings, topic, want, timeout=3.0)]


def test_outcomes_realized_error_rates_and_one_mae_trigger(loop_settings: Settings) -> None:
    settings = loop_settings
    t0 = load_reference(settings, "1").window_end
    assert t0 is not None
    start = t0 + timedelta(hours=1)
    served = predictions(settings, 120, start, price=PREDICTED)
    clicks = [reaction(p, "click") for p in served[:60]]
    inquiries = [reaction(p, "inquiry") for p in served[:45]]
    contracts = [reaction(p, "contract", PREDICTED * 3 // 2) for p in served[:40]]
    # rule 2: no prediction id, found through listing and user
    by_listing = reaction(served[45], "contract", PREDICTED * 3 // 2, prediction_id=None)
    unknown = reaction(served[46], "contract", 90_000, prediction_id=uuid.uuid4(), user_id="X")
    suspect = reaction(served[47], "contract", PREDICTED // 4)
    absurd = reaction(served[48], "contract", 9_999_999)
    listed = [listing_event(p.listing_id, event_time=start - timedelta(hours=1)) for p in served]
    first = to("listings", listed) + to("predictions", served)
    first += to("user-events", [*clicks, *inquiries, *contracts, by_listing, unknown, suspect])
    first += to("user-events", [contracts[0], absurd])  # a duplicate and an absurd price
    first += [("user-events", b"P1", b"{not json")]
    # The watermark moves past every prediction's attribution window (1 day): these clicks
    # come too late for their predictions and count for none; one event from long ago is
    # late for the watermark, and is kept but not counted.
    later = start + timedelta(days=3)
    clock = [
        reaction(p, "click", event_time=later + timedelta(minutes=i))
        for i, p in enumerate(served[100:110])
    ]
    late = reaction(served[110], "click", event_time=start - timedelta(days=30))
    second = to("user-events", [*clock, late])

    def settled(streams: FeatureStreams) -> bool:
        snap = streams.feedback.last_snapshot if streams.feedback else None
        return bool(
            snap is not None
            and snap.metrics.get("champion.v1.predictions_mature") == len(served)
            and snap.metrics.get("pending.events_waiting") == 0
        )

    streams = run_streams(settings, [first, second], settled)
    snap = streams.feedback.last_snapshot  # type: ignore[union-attr]
    assert snap is not None
    m = {k.removeprefix("champion.v1."): v for k, v in snap.metrics.items()}

    # Rates over mature predictions: distinct predictions with the outcome, not events.
    assert m["click_through_rate"] == pytest.approx(len(clicks) / len(served))
    assert m["inquiry_rate"] == pytest.approx(len(inquiries) / len(served))
    counted = [*contracts, by_listing]  # not the suspect one, the absurd one, the duplicate
    assert m["contract_rate"] == pytest.approx(len(counted) / len(served))
    assert m["avg_contract_amount"] == pytest.approx(PREDICTED * 3 // 2)
    # Realized error: |contract - shown price| over the contracts that count.
    assert m["mae_7d"] == pytest.approx(np.mean([c.contract_price - PREDICTED for c in counted]))
    assert m["contracts_7d"] == len(counted)
    assert m["predictions_pending"] == 0

    with connect(settings) as conn:
        conn.execute(f'SET search_path TO "{settings.db_schema}"')
        how = dict(
            conn.execute("SELECT attribution, count(*) FROM outcome_events GROUP BY 1").fetchall()
        )
        excluded = dict(
            conn.execute(
                "SELECT excluded, count(*) FROM outcome_events WHERE excluded IS NOT NULL "
                "GROUP BY 1"
            ).fetchall()
        )
        stored = conn.execute("SELECT count(*) FROM outcome_events").fetchone()
    assert how["listing_user"] == 1 and how["none"] == 1 + len(clock)
    assert excluded == {"suspect": 1, "late": 1}
    # every distinct valid event once: the duplicate and the refused ones are not rows
    distinct = len(clicks) + len(inquiries) + len(contracts) + 3 + len(clock) + 1
    assert stored == (distinct,)

    letters = decoded(settings, "dead-letter", DeadLetterEvent)
    mine = [d.error.split(":")[0] for d in letters if d.consumer == "feedback-outcomes"]
    assert sorted(mine) == ["implausible_price", "not_json"]

    # One cause, one request: the realized MAE (50% off) is far above the test MAE, and
    # stays so over many snapshots; the request carries the evidence, the alert is P2.
    requests = decoded(settings, "retrain-requests", RetrainRequest)
    assert [r.reason for r in requests] == ["mae_degradation"]
    evidence = requests[0].evidence
    assert evidence["model_version"] == "1" and evidence["contracts_7d"] == len(counted)
    assert evidence["realized_mae_7d"] > 1.2 * evidence["test_mae"]
    alerts = decoded(settings, "alerts", AlertEvent)
    assert [(a.priority, a.rule) for a in alerts] == [("P2", "realized_mae_rise")]
    snapshots = decoded(settings, "monitoring", MonitoringEvent)
    assert snapshots and all(s.component == "streams.feedback" for s in snapshots)

    # Contracts are labelled rows for training: the listing as of the contract, its price;
    # the suspect one is not a label, the unattributed one is.
    labels = contract_labels(settings)
    assert len(labels) == len(counted) + 1
    assert set(labels["price"]) == {PREDICTED * 3 // 2, 90_000}
    assert set(labels["region_code"]) == {"41135"} and labels["complex_id"].notna().all()

    # A restarted worker remembers the firing: replaying everything fires nothing new.
    run_streams(settings, [first], lambda s: bool(s.feedback and s.feedback.last_snapshot))
    assert len(decoded(settings, "retrain-requests", RetrainRequest)) == 1


def test_drifted_inputs_raise_one_drift_request_naming_the_features(
    loop_settings: Settings,
) -> None:
    settings = loop_settings
    t0 = load_reference(settings, "1").window_end
    assert t0 is not None
    steady = predictions(settings, 200, t0 + timedelta(hours=1))  # training rows: no drift
    bigger = predictions(settings, 400, t0 + timedelta(days=1), shift=1.5)  # 50% larger flats

    def three_windows(streams: FeatureStreams) -> bool:
        loop = streams.feedback
        state = loop.versions.get("1") if loop else None
        report = state.last_report if state else None
        return report is not None and report.window >= 2  # windows 0 (steady), 1 and 2

    waves = [to("predictions", steady), to("predictions", bigger)]
    streams = run_streams(settings, waves, three_windows)
    state = streams.feedback.versions["1"]  # type: ignore[union-attr]
    assert state.unmonitored == 0  # the champion's monitor was ready before the first row

    requests = decoded(settings, "retrain-requests", RetrainRequest)
    assert [r.reason for r in requests] == ["drift"]  # two drifted windows, one request
    evidence = requests[0].evidence
    assert evidence["monitor"] == "features" and evidence["window"] == 1
    drifted = {f["name"] for f in evidence["drifted"]}
    assert "area_sqm" in drifted
    assert evidence["score"] > 1.0
    alerts = decoded(settings, "alerts", AlertEvent)
    assert [(a.priority, a.rule) for a in alerts] == [("P3", "feature_drift")]
