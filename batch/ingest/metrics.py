"""Prometheus metrics of ingestion runs, written as a textfile for the node exporter's collector.

Batch jobs end before a scrape could reach them, so each run writes its registry to
``<data_dir>/metrics/ingest.prom`` (the textfile-collector convention).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile

from batch.ingest.pipeline import BatchResult
from homeloop.settings import Settings

registry = CollectorRegistry()
RUNS = Counter(
    "homeloop_ingest_runs", "Ingestion batches by source and outcome", ["source", "outcome"],
    registry=registry,
)  # fmt: skip
ROWS = Counter(
    "homeloop_ingest_rows", "Rows through each ingestion stage", ["source", "stage"],
    registry=registry,
)  # fmt: skip
STAGE_SECONDS = Gauge(
    "homeloop_ingest_stage_seconds", "Duration of the last run's stages", ["source", "stage"],
    registry=registry,
)  # fmt: skip


def observe(result: BatchResult) -> None:
    RUNS.labels(result.source, result.status).inc()
    for stage, rows in result.rows.items():
        ROWS.labels(result.source, stage).inc(rows)
    for stage, seconds in result.stage_seconds.items():
        STAGE_SECONDS.labels(result.source, stage).set(seconds)


def observe_failure(source: str) -> None:
    RUNS.labels(source, "failed").inc()


def write(settings: Settings) -> str:
    path = settings.data_dir / "metrics" / "ingest.prom"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    return str(path)
