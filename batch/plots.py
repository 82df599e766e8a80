"""The run's plots, drawn off-screen: feature importance and the SHAP summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from homeloop.price_model import PriceModel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TOP = 15


def _figure(height: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(8, height), layout="constrained")


def importance(model: PriceModel) -> dict[str, float]:
    """Total gain per feature (0 for features no tree splits on)."""
    if model.flavor == "xgboost":
        gains = model.booster.get_score(importance_type="total_gain")
    else:
        values = model.booster.feature_importance(importance_type="gain")
        gains = dict(zip(model.booster.feature_name(), values, strict=True))
    return {name: float(gains.get(name, 0.0)) for name in model.features}


def importance_plot(model: PriceModel) -> Figure:
    gains = sorted(importance(model).items(), key=lambda kv: kv[1])[-TOP:]
    fig = _figure(0.35 * len(gains) + 1)
    ax = fig.add_subplot()
    ax.barh([k for k, _ in gains], [v for _, v in gains], color="#4c72b0")
    ax.set_xlabel("total gain")
    ax.set_title(f"Feature importance ({model.flavor})")
    return fig


def shap_summary_plot(model: PriceModel, x: np.ndarray, seed: int = 7) -> Figure:
    """A beeswarm of the booster's own TreeSHAP values (in its target's units), one row per
    feature, coloured by the feature's value (grey where missing)."""
    phi = model.raw_contributions(x)[:, :-1]
    order = np.argsort(np.abs(phi).mean(axis=0))[-TOP:]
    fig = _figure(0.4 * len(order) + 1.2)
    ax = fig.add_subplot()
    rng = np.random.default_rng(seed)
    for row, j in enumerate(order):
        values = x[:, j]
        present = ~np.isnan(values)
        colour = np.full(len(values), 0.5)
        if present.any():
            lo, hi = np.nanpercentile(values, [5, 95])
            colour[present] = np.clip((values[present] - lo) / ((hi - lo) or 1.0), 0, 1)
        jitter = rng.normal(0, 0.12, len(values))
        ax.scatter(phi[present, j], row + jitter[present], c=colour[present], cmap="coolwarm",
                   s=4, alpha=0.6, vmin=0, vmax=1)  # fmt: skip
        ax.scatter(phi[~present, j], row + jitter[~present], c="#aaaaaa", s=4, alpha=0.4)
    ax.set_yticks(range(len(order)), [model.features[j] for j in order])
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.set_xlabel(f"SHAP value ({model.target.kind}); colour: feature value low → high")
    ax.set_title("SHAP summary (TreeSHAP from the booster)")
    return fig
