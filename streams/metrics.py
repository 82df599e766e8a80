"""Prometheus metrics of the stream worker (``homeloop_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS = Counter(
    "homeloop_worker_events_total",
    "Events the worker consumed, by topic and outcome",
    ["topic", "outcome"],
)
DEAD_LETTERS = Counter(
    "homeloop_dead_letters_total",
    "Events sent to the dead-letter topic, by source topic and reason",
    ["topic", "reason"],
)
FEATURE_WRITE_SECONDS = Histogram(
    "homeloop_feature_write_seconds",
    "Time to write one micro-batch of features to the online store",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
FEATURE_BATCH_SIZE = Histogram(
    "homeloop_feature_batch_size",
    "Rows per online-store write",
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500),
)
