"""Prometheus metrics of the stream worker (``homeloop_*``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

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


# --- the feedback loop -------------------------------------------------------------------
OUTCOME_EVENTS = Counter(
    "homeloop_outcome_events_total",
    "User events the feedback loop stored, by type and whether they count (counted, late, "
    "future) or were a duplicate",
    ["type", "outcome"],
)
ATTRIBUTIONS = Counter(
    "homeloop_attributions_total",
    "User events attributed to a prediction, by rule (prediction_id, listing_user, none)",
    ["how"],
)
SUSPECT_CONTRACTS = Counter(
    "homeloop_suspect_contracts_total",
    "Contracts more than 3x off their prediction: labels, but not counted as its error",
)
BUSINESS = Gauge(
    "homeloop_business_metric",
    "Per variant and model version: click_through_rate, inquiry_rate, contract_rate, "
    "avg_contract_amount, predictions_per_day, predictions_mature, predictions_pending",
    ["variant", "version", "metric"],
)
REALIZED_MAE = Gauge(
    "homeloop_realized_mae_manwon",
    "MAE of the prices users saw against their contract prices, last 7 days of contract time",
    ["variant", "version"],
)
REALIZED_CONTRACTS = Gauge(
    "homeloop_realized_contracts",
    "Contracts in the realized MAE window",
    ["variant", "version"],
)
MODEL_TEST_MAE = Gauge(
    "homeloop_model_test_mae_manwon", "A model version's MAE on its test window", ["version"]
)
PENDING = Gauge(
    "homeloop_feedback_pending",
    "Predictions whose attribution window is open, and user events whose attribution waits",
    ["kind"],
)
DRIFT_SCORE = Gauge(
    "homeloop_drift_score",
    "Importance-weighted drift of the last window against the training reference",
    ["version"],
)
DRIFT_RATIO = Gauge(
    "homeloop_drift_feature_ratio",
    "A feature's distance in the last window over its calibrated threshold (>1 alarms)",
    ["version", "feature"],
)
DRIFT_WINDOWS = Counter(
    "homeloop_drift_windows_total",
    "Windows of live rows compared with the training reference, by whether they drifted",
    ["version", "drifted"],
)
RESIDUAL_ALARMS = Counter(
    "homeloop_residual_alarms_total",
    "Change detections on the realized residual stream, by detector and segment",
    ["detector", "segment"],
)
RETRAIN_TRIGGERS = Counter(
    "homeloop_retrain_triggers_total", "Retrain requests the loop published, by reason", ["reason"]
)
CONSUMER_LAG = Gauge(
    "homeloop_consumer_lag_records", "Records not yet consumed, by consumer group", ["group"]
)
