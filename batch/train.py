"""The training job: fit the candidate grid, test it, gate it, record everything, register.

One run, in order, so that nothing is half-done when a step fails:

1. refuse a bad training set (too small, labels null or outside 1,000–500,000만원, a model
   column missing) and an unreachable tracking store, before any fitting;
2. split in time 70/15/15, fit every candidate of :data:`batch.candidates.GRID` in parallel,
   early-stopping on the validation window;
3. test each on the last window (overall, per region, per price band) and run the
   behavioural checks; the best passing candidate on validation MAE is chosen;
4. gate it: thresholds from settings, and no worse than the champion on the same window;
5. log the run (a parent run, one nested run per candidate, plots, the reference
   distributions, the feature list, the model); register the version with its tags in one
   call; move the alias and append the registry history in one PostgreSQL transaction
   (if the alias cannot move, the version is deleted again); publish ``model-events``.

A rejected candidate is logged and recorded with its reasons; no version, no alias move.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from batch.behaviour import Check, behaviour_checks
from batch.candidates import GRID, Candidate
from batch.dataset import TrainingSet, from_deals, time_split
from batch.evaluation import evaluate
from batch.fitting import Fitted, fit_grid, prepare
from batch.gates import Thresholds, gate_failures
from batch.registry_log import HistoryEntry, append
from homeloop.db import connect
from homeloop.events import ModelEvent
from homeloop.features import MODEL_FEATURES
from homeloop.model_store import ErrorBand, alias_version, load_alias, version_tags
from homeloop.price_model import AREA, PriceModel, TargetSpec
from homeloop.reference import build_reference
from homeloop.registry import CANDIDATE_TAG, CHALLENGER, CHAMPION
from homeloop.settings import Settings
from homeloop.tracking import check_reachable, ensure_experiment, mlflow_client

logger = logging.getLogger(__name__)

MIN_TRAINING_ROWS = 200
LABEL_RANGE = (1_000.0, 500_000.0)  # 만원: the design's validation range for a deal price
PLOT_ROWS = 5_000


class TrainingRefused(ValueError):
    """The training set cannot give a trustworthy model; the message says why."""


@dataclass(frozen=True)
class CandidateReport:
    name: str
    flavor: str
    trees: int
    seconds: float
    validation_mae: float
    metrics: dict[str, float]
    checks: list[Check]

    @property
    def passed_checks(self) -> bool:
        return all(c.passed for c in self.checks)


@dataclass(frozen=True)
class TrainingOutcome:
    status: Literal["registered", "rejected"]
    model_name: str
    run_id: str
    chosen: str | None
    reasons: list[str]
    candidates: list[CandidateReport]
    metrics: dict[str, float]
    window: dict[str, str]
    rows: dict[str, int]
    version: str | None = None
    alias: str | None = None
    previous_version: str | None = None
    champion: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def usable(training: TrainingSet) -> tuple[TrainingSet, int]:
    """The set without rows that cannot be labelled for the model (no plausible area);
    refuses the set when what is wrong would make any model untrustworthy."""
    missing = [c for c in MODEL_FEATURES if c not in training.columns]
    if missing:
        raise TrainingRefused(f"the training set lacks model feature(s): {', '.join(missing)}")
    labels = training.labels
    if np.isnan(labels).any():
        raise TrainingRefused(f"{int(np.isnan(labels).sum())} label(s) are null")
    lo, hi = LABEL_RANGE
    absurd = (labels < lo) | (labels > hi)
    if absurd.any():
        examples = ", ".join(f"{v:,.0f}" for v in labels[absurd][:3])
        raise TrainingRefused(
            f"{int(absurd.sum())} label(s) outside {lo:,.0f}–{hi:,.0f}만원 (e.g. {examples}): "
            "not deal prices in 만원"
        )
    area = training.features[:, training.columns.index(AREA)]
    keep = ~np.isnan(area)
    usable_set = training.select(keep) if not keep.all() else training
    if len(usable_set) < MIN_TRAINING_ROWS:
        raise TrainingRefused(
            f"the training window has {len(usable_set)} usable rows; "
            f"at least {MIN_TRAINING_ROWS} are needed"
        )
    return usable_set, int((~keep).sum())


def _window(times: pd.Series, part: slice) -> tuple[str, str]:
    return str(times.iloc[part.start]), str(times.iloc[part.stop - 1])


def _regions(training: TrainingSet, part: slice) -> np.ndarray:
    if training.rows is None or "region_code" not in training.rows.columns:
        return np.full(part.stop - part.start, "unknown")
    return training.rows["region_code"].astype(str).to_numpy()[part]


def _champion(
    settings: Settings, training: TrainingSet, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[dict[str, Any] | None, str | None]:
    """The champion's test MAE on the same window, or why it cannot be compared."""
    version = alias_version(settings, CHAMPION)
    if version is None:
        return None, None
    champion = load_alias(settings, CHAMPION, threads=2)
    absent = [f for f in champion.model.features if f not in training.columns]
    if absent:
        return {"version": champion.version}, (
            f"the champion (v{champion.version}) needs feature(s) this set lacks: {absent}"
        )
    columns = [training.columns.index(f) for f in champion.model.features]
    predicted = champion.model.predict(x_test[:, columns])
    if np.isnan(predicted).any():
        return {"version": champion.version}, "the champion cannot predict every test row"
    mae = float(np.mean(np.abs(predicted - y_test)))
    return {
        "version": champion.version,
        "test_mae": mae,
        "recorded_test_mae": champion.test_mae,
    }, None


def run_training(
    settings: Settings,
    data: pd.DataFrame | TrainingSet,
    *,
    reason: str = "manual",
    actor: str = "operator",
    training_id: int | None = None,
    extra_metrics: dict[str, float] | None = None,
    grid: tuple[Candidate, ...] = GRID,
    progress: Callable[[str], None] | None = None,
    publish_events: bool = True,
) -> TrainingOutcome:
    """Train, test, gate and record one run; see the module docstring for the order."""
    say = progress or (lambda _: None)
    started = time.perf_counter()
    raw = data if isinstance(data, TrainingSet) else from_deals(data)
    training, dropped = usable(raw)
    check_reachable(settings)
    settings.require()  # the registry history lives in PostgreSQL

    train, val, test = time_split(len(training))
    x, y = training.features, training.labels
    split = prepare(training, train, val)
    target = split.target

    say(f"fitting {len(grid)} candidates on {len(training):,} rows")
    t0 = time.perf_counter()
    fitted = fit_grid(grid, split, on_done=lambda f: say(f"fitted {f.candidate.name}"))
    fit_seconds = time.perf_counter() - t0

    say("testing candidates")
    rows_test = None
    if training.rows is not None and {"deal_time", "lat", "asking_price"} <= set(
        training.rows.columns
    ):
        rows_test = training.rows.iloc[test]
    reports, tables = [], {}
    for f in fitted:
        val_mae = float(np.mean(np.abs(f.model.predict(x[val]) - y[val])))
        metrics, table = evaluate(
            y[test], f.model.predict(x[test]), _regions(training, test), "test"
        )
        tables[f.candidate.name] = table
        checks = behaviour_checks(f.model, x[test], rows_test, y[val])
        reports.append(
            CandidateReport(
                f.candidate.name, f.candidate.flavor, f.trees, f.seconds, val_mae, metrics, checks
            )
        )
    passing = [r for r in reports if r.passed_checks]
    chosen = min(passing, key=lambda r: r.validation_mae) if passing else None

    say("comparing with the champion")
    champion, incomparable = _champion(settings, training, x[test], y[test])
    reasons: list[str] = []
    if chosen is None:
        for r in reports:
            failed = "; ".join(c.detail for c in r.checks if not c.passed)
            reasons.append(f"{r.name} failed behavioural checks: {failed}")
    else:
        champion_mae = champion.get("test_mae") if champion else None
        reasons = gate_failures(chosen.metrics, Thresholds.from_settings(settings), champion_mae)
        if incomparable:
            reasons.append(incomparable)
    window = {
        "window_start": str(training.times.iloc[0]),
        "window_end": str(training.times.iloc[-1]),
    }
    for name, part in (("train", train), ("validation", val), ("test", test)):
        window[f"{name}_start"], window[f"{name}_end"] = _window(training.times, part)
    rows = {"train": train.stop - train.start, "validation": val.stop - val.start,
            "test": test.stop - test.start, "dropped_no_area": dropped}  # fmt: skip
    metrics = {**(chosen.metrics if chosen else {}), **(extra_metrics or {})}
    if champion and "test_mae" in champion:
        metrics["champion_test_mae"] = champion["test_mae"]

    say("recording the run")
    model = next((f for f in fitted if chosen and f.candidate.name == chosen.name), None)
    run_id, model_uri = _log_run(
        settings, training, fitted, reports, tables, model, target, x, train, val,
        metrics=metrics, window=window, rows=rows, reason=reason, actor=actor,
        passed=not reasons,
    )  # fmt: skip
    band = None
    if model is not None:
        band = ErrorBand.from_residuals(y[val], model.model.predict(x[val]))
    outcome = TrainingOutcome(
        status="rejected" if reasons else "registered",
        model_name=settings.model_name,
        run_id=run_id,
        chosen=chosen.name if chosen else None,
        reasons=reasons,
        candidates=reports,
        metrics=metrics,
        window=window,
        rows=rows,
        champion=champion,
    )
    if reasons:
        _record_rejection(settings, outcome, training_id, actor, publish_events)
    else:
        assert model is not None and model_uri is not None and band is not None
        outcome = _register(settings, outcome, model.model, band, model_uri, training_id, actor,
                            publish_events, champion_exists=champion is not None)  # fmt: skip
    seconds = {"fit": fit_seconds, "total": time.perf_counter() - started}
    outcome = replace(outcome, seconds=seconds)
    logger.info(
        "training run=%s status=%s chosen=%s version=%s alias=%s reasons=%s",
        run_id, outcome.status, outcome.chosen, outcome.version, outcome.alias, reasons,
    )  # fmt: skip
    return outcome


def _log_run(
    settings: Settings,
    training: TrainingSet,
    fitted: list[Fitted],
    reports: list[CandidateReport],
    tables: dict[str, pd.DataFrame],
    chosen: Fitted | None,
    target: TargetSpec,
    x: np.ndarray,
    train: slice,
    val: slice,
    *,
    metrics: dict[str, float],
    window: dict[str, str],
    rows: dict[str, int],
    reason: str,
    actor: str,
    passed: bool,
) -> tuple[str, str | None]:
    """One parent run with a nested run per candidate; the chosen model logged (not yet
    registered). Returns the run id and the logged model's URI."""
    import mlflow

    from batch.plots import importance_plot, shap_summary_plot

    mlflow_client(settings)
    experiment_id = ensure_experiment(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{reason}") as parent:
        mlflow.set_tags({"homeloop.reason": reason, "homeloop.actor": actor,
                         "homeloop.outcome": "passed" if passed else "rejected"})  # fmt: skip
        mlflow.log_params({**window, **{f"rows_{k}": v for k, v in rows.items()}})
        mlflow.log_params(
            {"target": target.kind, "chosen": chosen.candidate.name if chosen else ""}
        )
        for f, report in zip(fitted, reports, strict=True):
            with mlflow.start_run(experiment_id=experiment_id, run_name=report.name, nested=True):
                mlflow.log_params(f.candidate.describe())
                mlflow.log_metrics(
                    {
                        **report.metrics,
                        "validation_mae": report.validation_mae,
                        "trees": report.trees,
                        "fit_seconds": report.seconds,
                    }
                )
                mlflow.log_dict({"checks": [c.as_dict() for c in report.checks]}, "checks.json")
                mlflow.log_text(tables[report.name].to_csv(index=False), "segments.csv")
        if metrics:
            mlflow.log_metrics(metrics)
        mlflow.log_dict({"features": list(training.columns)}, "features.json")
        candidates = pd.DataFrame(
            [{"candidate": r.name, "flavor": r.flavor, "trees": r.trees, "seconds": r.seconds,
              "validation_mae": r.validation_mae, "test_mae": r.metrics["test_mae"],
              "test_mape": r.metrics["test_mape"], "test_r2": r.metrics["test_r2"],
              "checks_passed": r.passed_checks} for r in reports]
        )  # fmt: skip
        mlflow.log_text(candidates.to_csv(index=False), "candidates.csv")
        if chosen is None:
            return parent.info.run_id, None
        report = next(r for r in reports if r.name == chosen.candidate.name)
        mlflow.log_dict({"checks": [c.as_dict() for c in report.checks]}, "checks.json")
        mlflow.log_text(tables[report.name].to_csv(index=False), "segments.csv")
        rng = np.random.default_rng(7)
        sample = x[train][
            rng.choice(train.stop - train.start, min(PLOT_ROWS, train.stop), replace=False)
        ]
        mlflow.log_figure(importance_plot(chosen.model), "feature_importance.png")
        mlflow.log_figure(shap_summary_plot(chosen.model, sample), "shap_summary.png")
        _log_reference(chosen.model, x, train, val, training)
        info = _log_model(chosen)
        return parent.info.run_id, info


def _log_reference(
    model: PriceModel, x: np.ndarray, train: slice, val: slice, training: TrainingSet
) -> None:
    """What the drift monitors compare live traffic with: the features and predictions of
    the newest labelled rows (validation and test windows: the traffic closest to what the
    model will serve; the whole year would differ from any month of it, building ages by
    a year), and the validation residuals."""
    import mlflow

    from batch.plots import importance

    recent = slice(val.start, None)
    frame = pd.DataFrame(x[recent], columns=list(model.features))
    frame["prediction"] = model.predict(x[recent])
    summary, sample = build_reference(frame)
    residual = training.labels[val] - model.predict(x[val])
    relative = training.labels[val] / model.predict(x[val]) - 1.0
    gains = importance(model)
    total = sum(gains.values()) or 1.0
    # The monitors weight drift by importance, and measure data growth from these rows.
    summary["importance"] = {name: gain / total for name, gain in gains.items()}
    summary["training"] = {
        "rows": len(training),
        "window_end": pd.Timestamp(training.times.iloc[-1]).isoformat(),
    }
    summary["validation_residuals"] = {
        "mae": float(np.mean(np.abs(residual))),
        # what the residual monitors calibrate with: relative, contract / price - 1
        "relative_std": float(np.std(relative)),
        "relative_sample": [
            round(float(r), 5) for r in relative[:: max(1, relative.size // 2_000)]
        ],
        "quantiles": {str(q): float(np.quantile(residual, q)) for q in (0.05, 0.1, 0.5, 0.9, 0.95)},
    }
    mlflow.log_dict(summary, "reference/summary.json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sample.parquet"
        sample.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), "reference")


def _log_model(chosen: Fitted) -> str:
    import mlflow

    if chosen.model.flavor == "xgboost":
        import mlflow.xgboost
        import xgboost as xgb

        info = mlflow.xgboost.log_model(
            chosen.model.booster, name="model", pip_requirements=[f"xgboost=={xgb.__version__}"]
        )
    else:
        import lightgbm as lgb
        import mlflow.lightgbm

        info = mlflow.lightgbm.log_model(
            chosen.model.booster, name="model", pip_requirements=[f"lightgbm=={lgb.__version__}"]
        )
    return str(info.model_uri)


def _events(settings: Settings, *events: ModelEvent, enabled: bool) -> None:
    if not enabled:
        return
    from homeloop.publish import publish

    try:
        publish(settings, *events)
    except Exception:  # the history in PostgreSQL has it; replicas also poll the registry
        logger.exception("could not publish model-events: %s", [e.action for e in events])


def _record_rejection(
    settings: Settings,
    outcome: TrainingOutcome,
    training_id: int | None,
    actor: str,
    publish_events: bool,
) -> None:
    reason = "; ".join(outcome.reasons)
    details = {"candidate": outcome.chosen, "metrics": outcome.metrics}
    with connect(settings) as conn:
        append(conn, settings.db_schema, HistoryEntry(
            settings.model_name, "rejected", reason, actor, mlflow_run_id=outcome.run_id,
            training_id=training_id, details=details,
        ))  # fmt: skip
    event = ModelEvent(action="rejected", model_name=settings.model_name, reason=reason,
                       actor=actor, details={"run_id": outcome.run_id, **details})  # fmt: skip
    _events(settings, event, enabled=publish_events)


def _register(
    settings: Settings,
    outcome: TrainingOutcome,
    model: PriceModel,
    band: ErrorBand,
    model_uri: str,
    training_id: int | None,
    actor: str,
    publish_events: bool,
    *,
    champion_exists: bool,
) -> TrainingOutcome:
    """The version with its tags in one call, then the alias and the history together."""
    import mlflow

    client = mlflow_client(settings)
    name = settings.model_name
    tags = {
        **version_tags(model, outcome.metrics["test_mae"], band),
        CANDIDATE_TAG: outcome.chosen or "",
    }
    version = str(
        mlflow.register_model(model_uri, name, tags=tags, await_registration_for=60).version
    )
    # The first model has nothing to be compared with or tested against: it serves at once.
    alias = CHALLENGER if champion_exists else CHAMPION
    previous = alias_version(settings, alias)
    why = ("passed the gates" if champion_exists else
           "passed the gates; no champion yet, so it serves at once")  # fmt: skip
    details = {"candidate": outcome.chosen, "test_mae": outcome.metrics["test_mae"],
               "test_mape": outcome.metrics["test_mape"], "test_r2": outcome.metrics["test_r2"],
               "champion": outcome.champion}  # fmt: skip
    moved = False
    try:
        with connect(settings) as conn:
            schema = settings.db_schema
            append(conn, schema, HistoryEntry(
                name, "registered", why, actor, version=version, mlflow_run_id=outcome.run_id,
                training_id=training_id, details=details,
            ))  # fmt: skip
            append(conn, schema, HistoryEntry(
                name, "staged" if champion_exists else "promoted", why, actor, version=version,
                alias=alias, previous_version=previous, mlflow_run_id=outcome.run_id,
                training_id=training_id, details=details,
            ))  # fmt: skip
            client.set_registered_model_alias(name, alias, version)
            moved = True
    except Exception:
        # No half-registered model: put the alias back and remove the version.
        if moved and previous is not None:
            client.set_registered_model_alias(name, alias, previous)
        elif moved:
            client.delete_registered_model_alias(name, alias)
        client.delete_model_version(name, version)
        raise
    common = {"model_name": name, "version": version, "actor": actor, "reason": why}
    _events(
        settings,
        ModelEvent(action="registered", details={"run_id": outcome.run_id, **details}, **common),
        ModelEvent(
            action="staged" if champion_exists else "promoted",
            alias=alias,
            previous_version=previous,
            details={"run_id": outcome.run_id},
            **common,
        ),
        enabled=publish_events,
    )
    return replace(outcome, version=version, alias=alias, previous_version=previous)


def has_alias(settings: Settings, alias: str = CHAMPION) -> bool:
    """Whether the registered model exists and some version holds ``alias``."""
    return alias_version(settings, alias) is not None
