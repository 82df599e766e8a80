"""The feedback loop's tables (migration 0004): write batches, attribute, aggregate.

The tables are the loop's memory: predictions by ``prediction_id`` and user events by
``event_id`` (a replay or a duplicate is one row), attribution decided in SQL by the
rules of :mod:`homeloop.outcomes`, and every rate and error recomputed from them, so
a restarted worker reports what a running one would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from psycopg import sql

from homeloop.events import PredictionEvent, UserEvent
from homeloop.outcomes import MAE_WINDOW, RealizedError, VariantOutcomes
from homeloop.triggers import Firing, period
from streams.offline_log import OfflineLog, insert_batch, json_columns, rows_from

# Rates are over the cohorts whose attribution window closed in this last stretch.
RATE_COHORTS = timedelta(days=30)

PREDICTION_COLUMNS = (
    ("prediction_id", "uuid"),
    ("listing_id", "text"),
    ("user_id", "text"),
    ("model_name", "text"),
    ("model_version", "text"),
    ("variant", "text"),
    ("predicted_price", "integer"),
    ("event_time", "timestamptz"),
)
# The listing's region, from the offline listing log, for per-region residual monitors.
INSERT_PREDICTIONS = sql.SQL(
    "INSERT INTO served_predictions ({names}, region_code) SELECT {casts}, "
    "(SELECT l.region_code FROM listing_features_log l WHERE l.listing_id = t.listing_id "
    " ORDER BY l.event_timestamp DESC LIMIT 1) "
    "FROM {rows} ON CONFLICT (prediction_id) DO NOTHING"
).format(
    names=sql.SQL(", ").join(sql.Identifier(n) for n, _ in PREDICTION_COLUMNS),
    casts=sql.SQL(", ").join(
        sql.SQL("t.{}::{}").format(sql.Identifier(n), sql.SQL(k)) for n, k in PREDICTION_COLUMNS
    ),
    rows=rows_from([n for n, _ in PREDICTION_COLUMNS]),
)

EVENT_COLUMNS = (
    ("event_id", "uuid"),
    ("type", "text"),
    ("user_id", "text"),
    ("listing_id", "text"),
    ("given_prediction_id", "uuid"),
    ("contract_price", "integer"),
    ("event_time", "timestamptz"),
    ("excluded", "text"),
)
INSERT_EVENTS = insert_batch(
    "outcome_events",
    EVENT_COLUMNS,
    sql.SQL("ON CONFLICT (event_id) DO NOTHING RETURNING event_id"),
)

# Decide the undecided events whose prediction is known, or whose wait is over
# (homeloop.outcomes, rules 1–3); return the attributed contracts with their predictions.
ATTRIBUTE = sql.SQL("""
WITH undecided AS (
    SELECT event_id, given_prediction_id, listing_id, user_id, event_time, received_at
    FROM outcome_events WHERE attributed_at IS NULL
    ORDER BY received_at LIMIT 20000 FOR UPDATE SKIP LOCKED
), matched AS (
    SELECT u.event_id,
           COALESCE(direct.prediction_id, fallback.prediction_id) AS prediction_id,
           CASE WHEN direct.prediction_id IS NOT NULL THEN 'prediction_id'
                WHEN fallback.prediction_id IS NOT NULL THEN 'listing_user'
                ELSE 'none' END AS how,
           direct.prediction_id IS NOT NULL
               OR (u.given_prediction_id IS NULL AND fallback.prediction_id IS NOT NULL)
               OR u.received_at < now() - make_interval(secs => %(wait_s)s) AS decided
    FROM undecided u
    LEFT JOIN served_predictions direct
           ON direct.prediction_id = u.given_prediction_id
          AND u.event_time <= direct.event_time + make_interval(secs => %(window_s)s)
    LEFT JOIN LATERAL (
        SELECT p.prediction_id FROM served_predictions p
        WHERE p.listing_id = u.listing_id AND p.user_id = u.user_id
          AND p.event_time <= u.event_time
          AND p.event_time >= u.event_time - make_interval(secs => %(window_s)s)
        ORDER BY p.event_time DESC LIMIT 1
    ) fallback ON true
), updated AS (
    UPDATE outcome_events e
    SET prediction_id = m.prediction_id, attribution = m.how, attributed_at = now()
    FROM matched m WHERE e.event_id = m.event_id AND m.decided
    RETURNING e.event_id, e.type, e.prediction_id, e.attribution, e.contract_price,
              e.event_time, e.excluded
)
SELECT u.event_id, u.type, u.attribution, u.excluded, u.contract_price, u.event_time,
       p.prediction_id, p.model_version, p.variant, p.region_code, p.predicted_price
FROM updated u LEFT JOIN served_predictions p ON p.prediction_id = u.prediction_id
""")

MARK_SUSPECT = sql.SQL(
    "UPDATE outcome_events SET excluded = 'suspect' WHERE event_id = ANY(%(ids)s::uuid[])"
)

COHORT_RATES = sql.SQL("""
WITH cohort AS (
    SELECT p.variant, p.model_version, p.prediction_id,
           bool_or(e.type = 'click') AS clicked,
           bool_or(e.type = 'inquiry') AS inquired,
           bool_or(e.type = 'contract') AS contracted,
           max(e.contract_price) FILTER (WHERE e.type = 'contract') AS amount
    FROM served_predictions p
    LEFT JOIN outcome_events e
           ON e.prediction_id = p.prediction_id AND e.excluded IS NULL
          AND e.event_time <= p.event_time + make_interval(secs => %(window_s)s)
    WHERE p.event_time > %(closed)s - make_interval(secs => %(cohorts_s)s)
      AND p.event_time <= %(closed)s
    GROUP BY 1, 2, 3
)
SELECT variant, model_version, count(*), count(*) FILTER (WHERE clicked),
       count(*) FILTER (WHERE inquired), count(*) FILTER (WHERE contracted),
       coalesce(sum(amount), 0)
FROM cohort GROUP BY 1, 2
""")

OPEN_COUNTS = sql.SQL("""
SELECT variant, model_version,
       count(*) FILTER (WHERE event_time > %(closed)s),
       count(*) FILTER (WHERE event_time > %(watermark)s - interval '1 day')
FROM served_predictions
WHERE event_time > %(closed)s OR event_time > %(watermark)s - interval '1 day'
GROUP BY 1, 2
""")

REALIZED_MAE = sql.SQL("""
SELECT p.variant, p.model_version, avg(abs(e.contract_price - p.predicted_price)), count(*)
FROM outcome_events e JOIN served_predictions p ON p.prediction_id = e.prediction_id
WHERE e.type = 'contract' AND e.excluded IS NULL
  AND e.event_time > %(since)s AND e.event_time <= %(watermark)s
GROUP BY 1, 2
""")

UNDECIDED = sql.SQL("SELECT count(*) FROM outcome_events WHERE attributed_at IS NULL")

NEW_LABELS = sql.SQL("""
SELECT (SELECT count(*) FROM outcome_events
        WHERE type = 'contract' AND (excluded IS NULL OR excluded = 'late')
          AND event_time > %(since)s)
     + (SELECT count(*) FROM deals WHERE contract_date > (%(since)s AT TIME ZONE 'Asia/Seoul'))
""")


FIRED = sql.SQL(
    "SELECT model_version, reason, max(fired_at) FROM feedback_triggers "
    "WHERE model_name = %(model)s GROUP BY 1, 2"
)
RECORD_TRIGGER = sql.SQL(
    "INSERT INTO feedback_triggers (model_name, model_version, reason, fired_at, period, "
    "request_id, evidence) VALUES (%(model)s, %(version)s, %(reason)s, %(at)s, %(period)s, "
    "%(request)s, %(evidence)s::jsonb) ON CONFLICT DO NOTHING RETURNING id"
)


@dataclass(frozen=True, slots=True)
class Attributed:
    """What one attribution pass decided."""

    decided: dict[str, int]  # how → events (prediction_id, listing_user, none)
    contracts: list[RealizedError]  # attributed contracts that count (not excluded)
    suspect: int


class FeedbackStore:
    """The loop's tables, through the offline log's connections."""

    def __init__(self, log: OfflineLog, window: timedelta, wait_s: float) -> None:
        self._log = log
        self.window = window
        self.wait_s = wait_s

    async def add_predictions(self, events: list[PredictionEvent]) -> None:
        if not events:
            return
        batch = {
            "prediction_id": [e.prediction_id for e in events],
            "listing_id": [e.listing_id for e in events],
            "user_id": [e.user_id for e in events],
            "model_name": [e.model_name for e in events],
            "model_version": [e.model_version for e in events],
            "variant": [e.variant for e in events],
            "predicted_price": [e.predicted_price for e in events],
            "event_time": [e.event_time for e in events],
        }
        await self._log.fetch(INSERT_PREDICTIONS, json_columns(batch))

    async def add_events(self, events: list[tuple[UserEvent, str | None]]) -> set[str]:
        """Store user events with their exclusion; returns the ids that were new."""
        if not events:
            return set()
        batch = {
            "event_id": [e.event_id for e, _ in events],
            "type": [e.type for e, _ in events],
            "user_id": [e.user_id for e, _ in events],
            "listing_id": [e.listing_id for e, _ in events],
            "given_prediction_id": [e.prediction_id for e, _ in events],
            "contract_price": [e.contract_price for e, _ in events],
            "event_time": [e.event_time for e, _ in events],
            "excluded": [why for _, why in events],
        }
        return {str(row[0]) for row in await self._log.fetch(INSERT_EVENTS, json_columns(batch))}

    async def attribute(self, is_suspect: Any) -> Attributed:
        """One pass over the undecided events; ``is_suspect(contract, predicted)`` marks
        contracts too far from their prediction to count as its error."""
        rows = await self._log.fetch(
            ATTRIBUTE, {"wait_s": self.wait_s, "window_s": self.window.total_seconds()}
        )
        decided: dict[str, int] = {}
        contracts: list[RealizedError] = []
        suspect: list[str] = []
        for event_id, kind, how, excluded, price, at, pid, version, variant, region, pred in rows:
            decided[how] = decided.get(how, 0) + 1
            if kind != "contract" or pid is None or excluded is not None:
                continue
            if is_suspect(price, pred):
                suspect.append(str(event_id))
                continue
            contracts.append(RealizedError(str(pid), version, variant, region, pred, price, at))
        if suspect:
            await self._log.fetch(MARK_SUSPECT, {"ids": suspect})
        contracts.sort(key=lambda c: c.event_time)
        return Attributed(decided, contracts, len(suspect))

    async def outcomes(self, watermark: datetime) -> list[VariantOutcomes]:
        """Per (variant, version): mature-cohort rates, open predictions, 7-day MAE."""
        closed = watermark - self.window
        window_s = self.window.total_seconds()
        rates = await self._log.fetch(
            COHORT_RATES,
            {"closed": closed, "window_s": window_s, "cohorts_s": RATE_COHORTS.total_seconds()},
        )
        opened = await self._log.fetch(OPEN_COUNTS, {"closed": closed, "watermark": watermark})
        mae = await self._log.fetch(
            REALIZED_MAE, {"since": watermark - MAE_WINDOW, "watermark": watermark}
        )
        keys = {(r[0], r[1]) for r in (*rates, *opened, *mae)}
        by_rates = {(r[0], r[1]): r[2:] for r in rates}
        by_open = {(r[0], r[1]): r[2:] for r in opened}
        by_mae = {(r[0], r[1]): r[2:] for r in mae}
        out = []
        for variant, version in sorted(keys):
            n, clicked, inquired, contracted, amount = by_rates.get((variant, version), (0,) * 5)
            pending, last_day = by_open.get((variant, version), (0, 0))
            err, contracts = by_mae.get((variant, version), (None, 0))
            out.append(
                VariantOutcomes(
                    variant=variant,
                    model_version=version,
                    predictions_mature=n,
                    predictions_pending=pending,
                    clicked=clicked,
                    inquired=inquired,
                    contracted=contracted,
                    contract_amount_sum=float(amount),
                    predictions_last_day=last_day,
                    mae_7d=None if err is None else float(err),
                    contracts_7d=contracts,
                )
            )
        return out

    async def fired_triggers(self, model_name: str) -> list[tuple[str, str, datetime]]:
        return [(v, r, at) for v, r, at in await self._log.fetch(FIRED, {"model": model_name})]

    async def record_trigger(
        self, model_name: str, version: str, firing: Firing, cooldown: timedelta, request: UUID
    ) -> bool:
        """Remember a firing; False when one for the same cause and period is there already
        (another worker's, or this one's before a restart)."""
        rows = await self._log.fetch(
            RECORD_TRIGGER,
            {"model": model_name, "version": version, "reason": firing.reason, "at": firing.at,
             "period": period(firing.at, cooldown), "request": request,
             "evidence": orjson.dumps(firing.evidence).decode()},
        )  # fmt: skip
        return bool(rows)

    async def undecided(self) -> int:
        rows = await self._log.fetch(UNDECIDED, {})
        return int(rows[0][0])

    async def new_labels(self, since: datetime) -> int:
        rows = await self._log.fetch(NEW_LABELS, {"since": since})
        return int(rows[0][0])
