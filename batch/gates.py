"""The gates a candidate passes before it is registered: absolute thresholds from settings,
and no worse than the current champion on the same test window."""

from __future__ import annotations

from dataclasses import dataclass

from homeloop.settings import Settings


@dataclass(frozen=True)
class Thresholds:
    max_mae: float | None
    min_r2: float | None
    max_mape: float | None
    champion_tolerance_pct: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            settings.gate_max_mae,
            settings.gate_min_r2,
            settings.gate_max_mape,
            settings.gate_champion_tolerance_pct,
        )


def gate_failures(
    metrics: dict[str, float], thresholds: Thresholds, champion_mae: float | None
) -> list[str]:
    """Why the candidate fails (empty: it passes). ``metrics`` are its test figures."""
    reasons = []
    mae, r2, mape = metrics["test_mae"], metrics["test_r2"], metrics["test_mape"]
    if thresholds.max_mae is not None and not mae < thresholds.max_mae:
        reasons.append(f"test MAE {mae:,.0f}만원 is not below {thresholds.max_mae:,.0f}")
    if thresholds.min_r2 is not None and not r2 > thresholds.min_r2:
        reasons.append(f"test R² {r2:.3f} is not above {thresholds.min_r2:.2f}")
    if thresholds.max_mape is not None and not mape < thresholds.max_mape:
        reasons.append(f"test MAPE {mape:.2f}% is not below {thresholds.max_mape:.1f}%")
    if champion_mae is not None:
        allowed = champion_mae * (1 + thresholds.champion_tolerance_pct / 100)
        if not mae <= allowed:
            reasons.append(
                f"test MAE {mae:,.0f}만원 is worse than the champion's {champion_mae:,.0f} "
                "on the same window"
            )
    return reasons
