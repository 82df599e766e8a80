"""Drift: is live traffic still what the model was trained on, and are its prices still right?

Two monitors, both pure (no I/O): the stream agent feeds them and publishes what they return.

**Input drift** (:class:`DriftMonitor`). Live rows are cut into tumbling windows of
``window_size`` rows; each window is compared column by column with the model's training
reference (:mod:`homeloop.reference`), the ``prediction`` column included.

- A column is *binned* when its reference values are few (≤ :data:`CATEGORY_LIMIT` distinct
  present values: each value is a bin, unseen values share an "other" bin) or all integers
  (floors, ages, deal counts: the reference's quantile bins). Binned columns use the
  population stability index (:func:`psi`) over their bins **plus a missing bin**, so a change
  in the missing share counts. All other columns are *continuous* and use the two-sample
  Kolmogorov–Smirnov statistic against the reference sample, missing values taken as −∞ (an
  atom below every value), so a missing-share change moves D by as much. KS because it is
  scale-free and bounded, its null law barely depends on the column (the Kolmogorov law for
  any continuous column), and it sees a shift anywhere in the distribution; Wasserstein
  distance (in reference standard deviations) is reported beside it as the effect size, but
  not alarmed on: one outlier in a window moves it arbitrarily, so its null law has no
  usable tail.
- **Thresholds are calibrated**, not fixed. A month of traffic at ``rate_per_s`` has
  ``checks = rate_per_s · 30 · 86400 / window_size`` windows; with F alarming columns the
  per-column false-alarm probability per check is ``alpha = budget / (checks · F)``
  (Bonferroni, so the whole monitor raises at most ``budget`` false alarms a month; the bound
  is conservative when columns are correlated). Each column's threshold is the (1 − alpha)
  quantile of its statistic with no drift, estimated by resampling ``resamples`` windows:

  * binned: a window of rows drawn from the reference and binned *is* a multinomial draw of
    bin counts, so counts are drawn directly (and cheaply: :data:`BINNED_DRAWS` times as
    many); the reference shares are redrawn too (from as many rows as they were measured
    on), because live windows are compared with shares that carry their own sampling noise;
  * continuous: windows are drawn with replacement from the reference sample and compared
    with it (vectorised, exact KS on the sample's values); comparing a live window with a
    finite sample of N rows widens the law of D by ``sqrt(1 + n/N)`` (the two-sample
    Kolmogorov scaling, which holds for any distribution, ties included), applied to the
    resampled statistics.

  alpha is usually far below ``1/resamples``, so the tail is extrapolated: above the
  resampled statistics' 90% quantile ``u`` the exceedances are taken as exponential
  (a generalized Pareto tail with shape 0), ``q = u + beta · ln(0.1 / alpha)``, on PSI and
  on D². Both statistics have exponential tails in those units: n·PSI tends to a scaled
  chi-square, whose hazard rises towards its limit, so the mean excess measured at ``u``
  over-states the far tail (conservative); n·D² has the Kolmogorov tail ``2·exp(−2t)``,
  exactly exponential beyond its 90% point, with a faster decay for columns with ties. For
  KS, ``beta`` is that theoretical ``1/(2n)`` (widened as above) rather than a noisy estimate
  from ~100 exceedances, which is exact for continuous columns and conservative otherwise.
  The shape is fixed at 0 rather than fitted: a shape fitted to ~100 exceedances would
  dominate the error of a three-decade extrapolation. The budget holds on average over
  reference samples; for the one sample a model carries, a column's own rate can be a few
  times off either way (the sample's deviation from the population is a fixed offset for
  the model's life), which largely averages out over columns; a larger sample narrows it.
  A threshold never goes below the statistic's value for a single row moved (a column
  constant in training alarms on the first changed row, not on rounding).
- **Zero-importance columns never alarm.** A feature the model does not use (importance 0 or
  absent from ``summary["importance"]``) is measured and reported with its ratio, but cannot
  make a window ``drifted``: engagement counts are all missing in training and present live,
  train/serve skew worth showing, not a reason to retrain. They do not count in F either.
- **Context columns never alarm either** (``context``; the agent passes the market
  features). They describe the market of a complex on a day and every listing of that
  complex shares the day's value, so a live window's rows are not independent draws of
  them: the row-resampled null understates their window-to-window spread (in the feedback
  benchmark 48–51 of 51 stationary windows went over threshold while their quantiles moved
  by a few per cent), and they are meant to move with the market. They are reported; a
  market that really moves reaches the alarms through the prediction column and the
  residual monitor.
- **Score**: ``Σ importance · min(value/threshold, RATIO_CAP)`` over the inputs that can
  alarm, so 0 is identical traffic and about their total importance is every one of them at
  its threshold; the cap keeps one wild column from swamping the rest.

**Residual change** (:class:`ResidualMonitor`): relative residuals ``contract / predicted − 1``
per segment ("all", a region code...) through river's Page-Hinkley test, a CUSUM on the
residual minus its running mean, with allowance ``delta = shift / 2`` (the optimal allowance
for a step of ``shift``) and its threshold from Siegmund's approximation of the CUSUM's
average run length with no change, ``ARL = (exp(θb) − θb − 1) / (θk)``, ``b = h + 1.166``,
``k`` and ``h`` in residual standard deviations and θ the exponential rate of the false-alarm
tail: ``2k`` for normal residuals, or solved from the validation residuals
(``mean(exp(θ(z − k))) = 1``), which matters for heavy tails. Each side must run
``2 · levels · detectors · events_per_month / budget`` events between false alarms, so a
stationary month raises at most ``budget`` false alarms over all segments: segments of one
level partition the stream, so their number does not matter. Residuals are clipped at
``±clip`` standard deviations first: one mistyped contract price must not trip a detector
alone, and bounded increments keep the approximation honest. A detector that fires starts
afresh, its running mean too: a second change within a few dozen events of an alarm is
taken for the new normal, and a small step (near ``shift``) after a short history can be
absorbed by the running mean before it is seen; the price of a baseline that needs no
reference mean (restarting from the residuals after the estimated change point closes
the first gap but makes false alarms come in pairs, so it is not done). River's
ADWIN at its defaults needs several times as many events for the steps this is tuned to
(``benchmarks/drift_calibration.py``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from river import drift as river_drift
from river.base import DriftDetector
from scipy import optimize, stats

PREDICTION = "prediction"
CATEGORY_LIMIT = 20  # ≤ this many distinct reference values: each value is a bin
TAIL = 0.1  # the share of resampled statistics the exponential tail is fitted to
RATIO_CAP = 3.0  # a column counts at most this many thresholds in the score
BINNED_DRAWS = 20  # binned nulls are cheap multinomial draws: this many times ``resamples``
MONTH_S = 30 * 86_400

Kind = Literal["binned", "continuous"]
Floats = NDArray[np.float64]


class Columns(Protocol):
    """A table by column name: a pandas DataFrame or a dict of arrays."""

    def __getitem__(self, key: str, /) -> Any: ...


# --- distances -------------------------------------------------------------------------------


def psi(reference_shares: ArrayLike, live_counts: ArrayLike) -> Any:
    """Population stability index ``Σ (l − r) · ln(l / r)`` over the last axis.

    Both arguments list the same bins, the missing bin included (see :func:`bin_counts`).
    Empty bins are smoothed by half a row of the live window: every share becomes
    ``(s + e) / (1 + K·e)`` with ``e = 0.5 / n``, the usual continuity correction, which
    keeps the index finite and bounds what a single row can add. Leading axes broadcast
    (a float for one window, an array for many).
    """
    counts = np.asarray(live_counts, dtype=np.float64)
    ref = np.asarray(reference_shares, dtype=np.float64)
    n = counts.sum(axis=-1, keepdims=True)
    if np.any(n <= 0):
        raise ValueError("psi needs at least one live row")
    k = counts.shape[-1]
    eps = 0.5 / n
    live = (counts / n + eps) / (1 + k * eps)
    ref = (ref / ref.sum(axis=-1, keepdims=True) + eps) / (1 + k * eps)
    value = np.sum((live - ref) * np.log(live / ref), axis=-1)
    return float(value) if np.ndim(value) == 0 else value


def bin_counts(values: ArrayLike, edges: Sequence[float]) -> NDArray[np.int64]:
    """Counts of ``values`` in the reference's quantile bins, then the missing (NaN) count.

    Binned as :func:`homeloop.reference.column_summary` bins: by the inner edges, values
    beyond the outer edges falling into the first and last bins.
    """
    v = np.asarray(values, dtype=np.float64)
    missing = np.isnan(v)
    inner = np.asarray(edges, dtype=np.float64)[1:-1]
    bins = np.bincount(np.searchsorted(inner, v[~missing], side="right"), minlength=inner.size + 1)
    return np.append(bins, missing.sum()).astype(np.int64)


def category_counts(values: ArrayLike, categories: ArrayLike) -> NDArray[np.int64]:
    """Counts of each reference value (sorted ``categories``, matched to a relative 1e-9),
    then of unseen values ("other"), then of missing."""
    v = np.asarray(values, dtype=np.float64)
    cats = np.asarray(categories, dtype=np.float64)
    missing = np.isnan(v)
    present = v[~missing]
    if cats.size == 0:
        return np.array([present.size, missing.sum()], dtype=np.int64)
    right = np.clip(np.searchsorted(cats, present), 0, cats.size - 1)
    left = np.clip(right - 1, 0, cats.size - 1)
    nearest = np.where(np.abs(present - cats[left]) <= np.abs(cats[right] - present), left, right)
    known = np.isclose(present, cats[nearest], rtol=1e-9, atol=1e-12)
    counts = np.bincount(nearest[known], minlength=cats.size)
    return np.concatenate([counts, [(~known).sum(), missing.sum()]]).astype(np.int64)


def ks_statistic(reference: ArrayLike, live: ArrayLike) -> float:
    """Two-sample Kolmogorov–Smirnov D (scipy), missing values taken as −∞."""
    ref, win = _fill_missing(reference), _fill_missing(live)
    return float(stats.ks_2samp(win, ref, method="asymp").statistic)


def wasserstein(reference: ArrayLike, live: ArrayLike, scale: float) -> float | None:
    """Wasserstein-1 distance between the present values (scipy), in units of ``scale``
    (the reference standard deviation); None when either side has no present value."""
    ref, win = np.asarray(reference, dtype=np.float64), np.asarray(live, dtype=np.float64)
    ref, win = ref[~np.isnan(ref)], win[~np.isnan(win)]
    if ref.size == 0 or win.size == 0 or not scale > 0:
        return None
    return float(stats.wasserstein_distance(win, ref)) / scale


def column_kind(values: ArrayLike) -> Kind:
    """``binned`` for few distinct values (≤ CATEGORY_LIMIT) or integers, else ``continuous``."""
    v = np.asarray(values, dtype=np.float64)
    present = v[~np.isnan(v)]
    if np.unique(present).size <= CATEGORY_LIMIT or np.all(present == np.round(present)):
        return "binned"
    return "continuous"


def _fill_missing(values: ArrayLike) -> Floats:
    v = np.array(values, dtype=np.float64)
    v[np.isnan(v)] = -np.inf
    return v


# --- calibration -----------------------------------------------------------------------------


def tail_quantile(null: ArrayLike, alpha: float, *, beta: float | None = None) -> float:
    """The (1 − alpha) quantile of a statistic from resampled values of it.

    Within the sample, the empirical quantile; beyond its top :data:`TAIL`, an exponential
    tail above the ``1 − TAIL`` quantile ``u`` with mean excess ``beta`` (estimated from the
    exceedances when not given): ``u + beta · ln(TAIL / alpha)``.
    """
    values = np.asarray(null, dtype=np.float64)
    if alpha >= TAIL:
        return float(np.quantile(values, 1 - alpha))
    u = float(np.quantile(values, 1 - TAIL))
    if beta is None:
        excess = values[values > u] - u
        beta = float(excess.mean()) if excess.size else 0.0
    return u + beta * math.log(TAIL / alpha)


@dataclass(frozen=True)
class DriftConfig:
    """How the input monitor checks: tumbling windows of ``window_size`` rows, traffic of
    ``rate_per_s`` predictions a second, at most ``false_alarms_per_month`` false alarms."""

    window_size: int
    rate_per_s: float
    false_alarms_per_month: float = 1.0
    resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window_size < 10:
            raise ValueError(f"window_size must be at least 10 rows, got {self.window_size}")
        if not (self.rate_per_s > 0 and self.false_alarms_per_month > 0):
            raise ValueError("rate_per_s and false_alarms_per_month must be positive")
        if self.resamples < 100:
            raise ValueError(f"resamples must be at least 100, got {self.resamples}")

    @property
    def checks_per_month(self) -> float:
        return self.rate_per_s * MONTH_S / self.window_size

    def alpha(self, alarming: int) -> float:
        """Per-column false-alarm probability per window for ``alarming`` columns."""
        return min(0.5, self.false_alarms_per_month / (self.checks_per_month * max(alarming, 1)))


class _Column:
    """One reference column: how a window of it is measured, and its calibrated threshold."""

    def __init__(
        self, name: str, summary: Mapping[str, Any], sample: Floats, importance: float
    ) -> None:
        self.name = name
        self.importance = importance
        self.kind: Kind = column_kind(sample)
        present = np.sort(sample[~np.isnan(sample)])
        self._present = present
        self._std = float(present.std()) if present.size else 0.0
        self.threshold = math.nan
        self.categories: Floats | None = None
        if self.kind == "continuous":
            self._sorted = np.sort(_fill_missing(sample))
            self._uniq, counts = np.unique(self._sorted, return_counts=True)
            self._ref_cum = np.cumsum(counts)
        elif np.unique(present).size <= CATEGORY_LIMIT:
            self.categories = np.unique(present)
            self.shares = category_counts(sample, self.categories) / sample.size
            self.reference_rows = int(sample.size)
        else:
            self.edges = list(summary["edges"])
            present_shares = np.asarray(summary["shares"], dtype=np.float64)
            missing = float(summary["missing_share"])
            self.shares = np.append(present_shares * (1 - missing), missing)
            self.reference_rows = int(summary["rows"])

    @property
    def statistic(self) -> str:
        return "ks" if self.kind == "continuous" else "psi"

    def counts(self, values: Floats) -> NDArray[np.int64]:
        if self.categories is not None:
            return category_counts(values, self.categories)
        return bin_counts(values, self.edges)

    def measure(self, values: Floats) -> float:
        if self.kind == "continuous":
            return _ks_sorted(self._sorted, _fill_missing(values))
        return float(psi(self.shares, self.counts(values)))

    def effect(self, values: Floats) -> float | None:
        """Wasserstein distance of the present values, in reference standard deviations."""
        live = np.sort(values[~np.isnan(values)])
        if live.size == 0 or self._present.size == 0 or not self._std > 0:
            return None
        return _wasserstein_sorted(self._present, live) / self._std

    def calibrate(self, n: int, alpha: float, resamples: int, rng: np.random.Generator) -> None:
        if self.kind == "continuous":
            size = self._sorted.size
            widen = 1 + n / size  # two-sample Kolmogorov scaling of D²
            null = _ks_null(self._uniq.size, self._ref_cum, n, resamples, rng) ** 2 * widen
            q = tail_quantile(null, alpha, beta=widen / (2 * n))
            self.threshold = max(math.sqrt(q), 1 / n)
            return
        shares = self.shares / self.shares.sum()
        draws = resamples * BINNED_DRAWS
        live = rng.multinomial(n, shares, size=draws)
        ref = rng.multinomial(self.reference_rows, shares, size=draws) / self.reference_rows
        null = psi(ref, live)
        self.threshold = max(tail_quantile(null, alpha), _one_row_psi(shares, n))


def _one_row_psi(shares: Floats, n: int) -> float:
    """PSI of a window in the reference proportions but for one row moved to the rarest bin."""
    counts = shares * n
    top = int(np.argmax(shares))
    rarest = int(np.argmin(np.where(np.arange(shares.size) == top, np.inf, shares)))
    counts[top] -= 1
    counts[rarest] += 1
    return float(psi(shares, np.clip(counts, 0, None)))


def _ks_null(
    unique: int, ref_cum: NDArray[np.int64], n: int, resamples: int, rng: np.random.Generator
) -> Floats:
    """KS D of ``resamples`` windows of ``n`` rows drawn with replacement from the sample."""
    size = int(ref_cum[-1])
    uid = np.repeat(np.arange(unique), np.diff(ref_cum, prepend=0))
    out = np.empty(resamples)
    chunk = max(1, 4_000_000 // max(unique, n))
    for start in range(0, resamples, chunk):
        m = min(chunk, resamples - start)
        out[start : start + m] = _ks_of_ids(uid[rng.integers(0, size, size=(m, n))], ref_cum)
    return out


def _ks_of_ids(ids: NDArray[np.int64], ref_cum: NDArray[np.int64]) -> Floats:
    """KS D of each row of ``ids`` (indices of the sample's unique values) against the
    sample (cumulative counts ``ref_cum`` per unique value); exact, since both step
    functions jump only at the sample's values."""
    m, n = ids.shape
    unique, size = ref_cum.size, int(ref_cum[-1])
    flat = (ids + (np.arange(m) * unique)[:, None]).ravel()
    cum = np.cumsum(np.bincount(flat, minlength=m * unique).reshape(m, unique), axis=1)
    return np.abs(cum * size - ref_cum * n).max(axis=1) / (n * size)


def _merged(ref: Floats, live: Floats) -> tuple[Floats, NDArray[np.bool_]]:
    """Two sorted arrays merged (live after equal reference values), and which are live."""
    at = np.searchsorted(ref, live, side="right") + np.arange(live.size)
    is_live = np.zeros(ref.size + live.size, dtype=bool)
    is_live[at] = True
    merged = np.empty(is_live.size)
    merged[is_live], merged[~is_live] = live, ref
    return merged, is_live


def _cdf_gap(is_live: NDArray[np.bool_], n: int, size: int) -> Floats:
    """F_live − F_ref just after each merged value."""
    return np.cumsum(is_live) / n - np.cumsum(~is_live) / size


def _ks_sorted(ref: Floats, live: Floats) -> float:
    """KS D of a live window against the sorted reference; equals :func:`ks_statistic`."""
    merged, is_live = _merged(ref, np.sort(live))
    last_of_ties = np.append(merged[1:] != merged[:-1], True)
    gap = _cdf_gap(is_live, live.size, ref.size)
    return float(np.abs(gap[last_of_ties]).max())


def _wasserstein_sorted(ref: Floats, live: Floats) -> float:
    """∫ |F_live − F_ref| between sorted present values; equals scipy's wasserstein_distance."""
    merged, is_live = _merged(ref, live)
    gap = _cdf_gap(is_live, live.size, ref.size)[:-1]
    return float(np.sum(np.abs(gap) * np.diff(merged)))


# --- the input monitor -----------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDrift:
    """One column in one window. ``drifted``: over its threshold; ``alarming``: whether
    that can raise an alarm (zero-importance features are reported only)."""

    name: str
    kind: Kind
    statistic: str
    value: float
    threshold: float
    ratio: float
    importance: float
    alarming: bool
    drifted: bool
    missing_share: float
    wasserstein: float | None

    @property
    def weighted(self) -> float:
        """Its part of the score: only columns that can alarm count."""
        return self.importance * min(self.ratio, RATIO_CAP) if self.alarming else 0.0


@dataclass(frozen=True)
class DriftReport:
    """One completed window: every model input, and the prediction column."""

    window: int
    rows: int
    features: tuple[ColumnDrift, ...]
    prediction: ColumnDrift | None

    @property
    def drifted(self) -> bool:
        columns = (*self.features, *([self.prediction] if self.prediction else []))
        return any(c.drifted and c.alarming for c in columns)

    @property
    def score(self) -> float:
        """Σ importance · min(ratio, RATIO_CAP) over the inputs: 0 identical, ~1 at threshold."""
        return float(sum(c.weighted for c in self.features))

    def top(self, k: int = 5) -> list[ColumnDrift]:
        """The ``k`` inputs that drifted most, by importance-weighted ratio (then ratio)."""
        return sorted(self.features, key=lambda c: (c.weighted, c.ratio), reverse=True)[:k]

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "rows": self.rows,
            "drifted": self.drifted,
            "score": self.score,
            "features": [asdict(c) for c in self.features],
            "prediction": asdict(self.prediction) if self.prediction else None,
        }


class DriftMonitor:
    """Calibrates every reference column's threshold once, then checks windows as rows arrive.

    ``summary`` and ``sample`` are the model's reference (:func:`homeloop.reference.
    build_reference`); ``importance`` defaults to ``summary["importance"]`` (features it
    lacks weigh 0), and to equal weights when the reference has none. ``context`` names
    columns that are measured and reported but never alarm, like zero-importance ones (see
    :data:`homeloop.features.MARKET_FEATURES` for why the market's are).
    """

    def __init__(
        self,
        summary: Mapping[str, Any],
        sample: Columns,
        config: DriftConfig,
        importance: Mapping[str, float] | None = None,
        context: Collection[str] = (),
    ) -> None:
        self.config = config
        self.context = frozenset(context)
        names = list(summary["columns"])
        features = [c for c in names if c != PREDICTION]
        weights = importance if importance is not None else summary.get("importance")
        if weights is None:
            weights = {c: 1 / len(features) for c in features} if features else {}
        self.columns = [
            _Column(
                c,
                summary["summary"][c],
                np.asarray(sample[c], dtype=np.float64),
                1.0 if c == PREDICTION else float(weights.get(c, 0.0)),
            )
            for c in names
        ]
        alarming = sum(1 for c in self.columns if self._alarms(c))
        self.alpha = config.alpha(alarming)
        rng = np.random.default_rng(config.seed)
        for column in self.columns:
            column.calibrate(config.window_size, self.alpha, config.resamples, rng)
        self._pending: list[Floats] = []
        self._pending_rows = 0
        self._windows = 0

    def _alarms(self, column: _Column) -> bool:
        return column.importance > 0 and column.name not in self.context

    @property
    def thresholds(self) -> dict[str, float]:
        return {c.name: c.threshold for c in self.columns}

    @property
    def kinds(self) -> dict[str, Kind]:
        return {c.name: c.kind for c in self.columns}

    def feed(self, matrix: ArrayLike, columns: Sequence[str]) -> list[DriftReport]:
        """Adds rows (columns named by ``columns``, NaN for missing); a report per window
        completed. Columns the reference lacks are ignored; reference columns absent from
        ``columns`` count as missing."""
        rows = np.asarray(matrix, dtype=np.float64).reshape(-1, len(columns))
        where = {name: i for i, name in enumerate(columns)}
        aligned = np.full((rows.shape[0], len(self.columns)), np.nan)
        for j, column in enumerate(self.columns):
            if column.name in where:
                aligned[:, j] = rows[:, where[column.name]]
        self._pending.append(aligned)
        self._pending_rows += aligned.shape[0]
        size = self.config.window_size
        if self._pending_rows < size:
            return []
        stacked = np.concatenate(self._pending)
        complete = stacked.shape[0] // size
        reports = [self._check(stacked[i * size : (i + 1) * size]) for i in range(complete)]
        rest = stacked[complete * size :]
        self._pending, self._pending_rows = [rest], rest.shape[0]
        return reports

    def _check(self, window: Floats) -> DriftReport:
        entries = []
        for j, column in enumerate(self.columns):
            values = window[:, j]
            value = column.measure(values)
            ratio = value / column.threshold
            entries.append(
                ColumnDrift(
                    name=column.name,
                    kind=column.kind,
                    statistic=column.statistic,
                    value=value,
                    threshold=column.threshold,
                    ratio=ratio,
                    importance=column.importance,
                    alarming=self._alarms(column),
                    drifted=ratio > 1,
                    missing_share=float(np.isnan(values).mean()),
                    wasserstein=column.effect(values),
                )
            )
        self._windows += 1
        prediction = next((e for e in entries if e.name == PREDICTION), None)
        return DriftReport(
            window=self._windows - 1,
            rows=window.shape[0],
            features=tuple(e for e in entries if e.name != PREDICTION),
            prediction=prediction,
        )


# --- residual change -------------------------------------------------------------------------


def relative_residual(contract_price: float, predicted_price: float) -> float:
    """``contract / predicted − 1``: +0.2 is a contract 20% above the served price."""
    return contract_price / predicted_price - 1


def residual_scale(summary: Mapping[str, Any]) -> float:
    """The standard deviation of relative residuals on the reference's validation data.

    ``validation_residuals["relative_std"]`` when the reference has it; else approximated
    from the absolute residuals' mean absolute error over the mean prediction, times
    ``sqrt(π/2)`` (the std of a normal variable over its mean absolute value).
    """
    residuals = summary["validation_residuals"]
    if "relative_std" in residuals:
        return float(residuals["relative_std"])
    mean_prediction = float(summary["summary"][PREDICTION]["mean"])
    return math.sqrt(math.pi / 2) * float(residuals["mae"]) / mean_prediction


def adjustment_coefficient(z: ArrayLike, k: float) -> float:
    """The θ > 0 with ``mean(exp(θ · (z − k))) = 1`` for standardised increments ``z``
    (mean 0): the exponential rate of the CUSUM's false-alarm tail. 2k for normal ``z``;
    smaller for heavier tails, which then trip the detector sooner."""
    values = np.asarray(z, dtype=np.float64)
    values = values - values.mean()
    if values.max(initial=-np.inf) <= k:
        return 2 * k
    excess = values - k

    def balance(theta: float) -> float:
        return float(np.mean(np.exp(theta * excess))) - 1

    hi = 2 * k + 1.0
    while balance(hi) < 0:
        hi *= 2
    return float(optimize.brentq(balance, 1e-9, hi, xtol=1e-9))


def cusum_arl(k: float, h: float, theta: float | None = None) -> float:
    """Siegmund's approximation of a one-sided CUSUM's average run length with no change:
    allowance ``k`` and threshold ``h`` in standard deviations of the increments, tail rate
    ``theta`` (:func:`adjustment_coefficient`; 2k, normal increments, by default)."""
    b = h + 1.166
    if k < 1e-6:
        return b * b
    rate = 2 * k if theta is None else theta
    return (math.expm1(rate * b) - rate * b) / (rate * k)


def cusum_threshold(k: float, arl: float, theta: float | None = None) -> float:
    """The threshold ``h`` (in standard deviations) whose one-sided run length is ``arl``."""
    if cusum_arl(k, 0.0, theta) >= arl:
        return 0.0
    hi = 1.0
    while cusum_arl(k, hi, theta) < arl:
        hi *= 2
    return float(optimize.brentq(lambda h: cusum_arl(k, h, theta) - arl, 0.0, hi, xtol=1e-6))


@dataclass(frozen=True)
class ResidualConfig:
    """Calibration of the residual detectors.

    ``scale`` is the standard deviation of the relative residuals on validation data
    (:func:`residual_scale`); ``events_per_month`` the contracts a month (all segments);
    ``shift`` the relative step the detector is tuned to catch fastest; ``levels`` how many
    segment keys each event updates ("all" and its region: 2).
    """

    scale: float
    events_per_month: float
    false_alarms_per_month: float = 1.0
    shift: float = 0.1
    levels: int = 2
    min_instances: int = 30
    clip: float = 4.0

    def __post_init__(self) -> None:
        if not (self.scale > 0 and self.events_per_month > 0 and self.shift > 0):
            raise ValueError("scale, events_per_month and shift must be positive")

    def clipped(self, residuals: ArrayLike) -> Floats:
        bound = self.clip * self.scale
        return np.clip(np.asarray(residuals, dtype=np.float64), -bound, bound)


def page_hinkley(
    config: ResidualConfig, *, detectors: int = 1, residuals: ArrayLike | None = None
) -> river_drift.PageHinkley:
    """river's two-sided Page-Hinkley with the calibrated allowance and threshold, one of
    ``detectors`` sharing the false-alarm budget. With validation ``residuals`` the tail
    rate is theirs (:func:`adjustment_coefficient`), else that of normal residuals."""
    k = config.shift / (2 * config.scale)
    theta = None
    if residuals is not None:
        theta = adjustment_coefficient(config.clipped(residuals) / config.scale, k)
    two_sided = config.levels * detectors * config.events_per_month / config.false_alarms_per_month
    h = cusum_threshold(k, 2 * two_sided, theta)
    return river_drift.PageHinkley(
        min_instances=config.min_instances,
        delta=config.shift / 2,
        threshold=h * config.scale,
        alpha=1.0,
        mode="both",
    )


@dataclass(frozen=True)
class ResidualDrift:
    """A detected change: residual means before and after the estimated change point."""

    segment: str
    detector: str
    seen: int
    before: float
    after: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Track:
    detector: DriftDetector
    seen: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=4096))


class ResidualMonitor:
    """Change detectors on relative residuals, one set per segment, created on first sight.

    ``detectors`` names detector factories; by default the calibrated Page-Hinkley alone
    (:func:`page_hinkley`, with the validation ``residuals`` when given). Detectors passed
    in are the caller's to calibrate.
    """

    def __init__(
        self,
        config: ResidualConfig,
        *,
        residuals: ArrayLike | None = None,
        detectors: Mapping[str, Callable[[], DriftDetector]] | None = None,
    ) -> None:
        self.config = config
        if detectors is None:
            calibrated = page_hinkley(config, residuals=residuals)
            detectors = {"page_hinkley": lambda: calibrated.clone()}
        self.factories = dict(detectors)
        self._tracks: dict[tuple[str, str], _Track] = {}

    def update(self, residual: float, segments: Sequence[str] = ("all",)) -> list[ResidualDrift]:
        """One relative residual, counted in each of ``segments``; the changes it reveals."""
        x = float(self.config.clipped(residual))
        found = []
        for segment in segments:
            for name, factory in self.factories.items():
                track = self._tracks.get((segment, name))
                if track is None:
                    track = self._tracks[(segment, name)] = _Track(factory())
                track.detector.update(x)
                track.seen += 1
                track.recent.append(x)
                if track.detector.drift_detected:
                    recent = np.fromiter(track.recent, dtype=np.float64)
                    cut = _change_point(recent)
                    before, after = float(recent[:cut].mean()), float(recent[cut:].mean())
                    found.append(ResidualDrift(segment, name, track.seen, before, after))
                    self._tracks[(segment, name)] = _Track(factory())
        return found


def _change_point(x: Floats) -> int:
    """The most likely single change point: where the centred cumulative sum is farthest
    from zero (the index of the first residual after it; 1 ≤ cut < len when len ≥ 2)."""
    if x.size < 2:
        return 0
    return int(np.argmax(np.abs(np.cumsum(x - x.mean())[:-1]))) + 1
