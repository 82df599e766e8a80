"""Prometheus metrics of the stream worker (``homeloop_*``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

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
FEATURE_QUALITY = Counter(
    "homeloop_feature_quality_total",
    "Feature values left missing because the input was missing or implausible, by reason",
    ["view", "reason"],
)
# Fine around the 250 ms freshness goal, coarse in the tail.
FRESHNESS_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2)
FRESHNESS_BUCKETS += (0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0)
FEATURE_FRESHNESS = Histogram(
    "homeloop_feature_freshness_seconds",
    "From an event's produce time (Kafka timestamp) to its features being written online",
    ["view"],
    buckets=FRESHNESS_BUCKETS,
)
ENGAGEMENT_RECOUNTS = Counter(
    "homeloop_engagement_recounts_total",
    "Listings whose engagement windows were recounted, by cause (event or window slide)",
    ["cause"],
)


FRESHNESS_SAMPLE_EVERY = 4


def observe_freshness(view: str, records: Sequence[Any]) -> None:
    """Produce time (the record's Kafka timestamp, ms) to now, for every 4th record written
    (a systematic sample: the distribution is the same, at a quarter of the cost)."""
    histogram = FEATURE_FRESHNESS.labels(view=view)
    done_ms = time.time() * 1000
    for record in records[::FRESHNESS_SAMPLE_EVERY]:
        histogram.observe(max(0.0, done_ms - record.timestamp) / 1000)
