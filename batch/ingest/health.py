"""Run-health rules over the batch log: processing-time spikes and the collection success rate.

- A stage whose duration exceeds 3× its median over the previous runs of the same source
  (at least 5 of them) is a spike: P3 alert.
- The share of successful runs among the last 20 of a source below 90% (the design's
  alert level; SLA > 95%): P2 alert, act on the backup source.
"""

from __future__ import annotations

import statistics
from typing import Any

from psycopg import sql

from homeloop.events import AlertEvent

SPIKE_FACTOR = 3.0
MIN_HISTORY = 5
SUCCESS_WINDOW = 20
MIN_SUCCESS_RATE = 0.90


def spikes(
    current: dict[str, float], history: list[dict[str, float]]
) -> list[tuple[str, float, float]]:
    """(stage, seconds, median) for every stage slower than ``SPIKE_FACTOR`` × its median."""
    found = []
    for stage, seconds in current.items():
        past = [h[stage] for h in history if stage in h]
        if len(past) < MIN_HISTORY:
            continue
        median = statistics.median(past)
        if median > 0 and seconds > SPIKE_FACTOR * median:
            found.append((stage, seconds, median))
    return found


def success_rate(statuses: list[str]) -> float | None:
    if not statuses:
        return None
    return sum(s == "loaded" for s in statuses) / len(statuses)


def health_alerts(conn: Any, schema: str, source: str, batch_id: str | None) -> list[AlertEvent]:
    """Alerts for the newest run of ``source`` against the batch log."""
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT batch_id, status, stage_seconds FROM {} WHERE source = %s "
                "ORDER BY started_at DESC LIMIT %s"
            ).format(sql.Identifier(schema, "ingest_batches")),
            (source, max(SUCCESS_WINDOW, 50)),
        )
        runs = cur.fetchall()
    alerts: list[AlertEvent] = []
    if batch_id is not None:
        current = next((r[2] for r in runs if r[0] == batch_id), None)
        history = [r[2] for r in runs if r[0] != batch_id and r[1] == "loaded"]
        for stage, seconds, median in spikes(current or {}, history):
            alerts.append(
                AlertEvent(
                    priority="P3",
                    rule="ingest_stage_slow",
                    value=seconds,
                    threshold=SPIKE_FACTOR * median,
                    message=f"{source} {stage} took {seconds:.2f}s, median {median:.2f}s",
                    source="batch.ingest",
                )
            )
    window = [r[1] for r in runs[:SUCCESS_WINDOW]]
    rate = success_rate(window)
    if rate is not None and len(runs) >= MIN_HISTORY and rate < MIN_SUCCESS_RATE:
        alerts.append(
            AlertEvent(
                priority="P2",
                rule="collection_success_low",
                value=rate,
                threshold=MIN_SUCCESS_RATE,
                action="use the backup source",
                message=f"{source}: {rate:.0%} of the last {len(window)} runs succeeded",
                source="batch.ingest",
            )
        )
    return alerts
