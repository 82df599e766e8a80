"""Engagement over sliding windows in event time: clicks and inquiries per listing.

Windows are real sliding windows, not cumulative counters: the count "as of t" is the
number of events in (t − window, t]. Events may arrive out of order; they are kept sorted.
Events older than the longest window before the newest seen are evicted.

This is the plain reference of the rule. The engagement agent counts the same windows
inside Redis (sorted sets, ``streams/online_writer.py``) so that a count survives restarts
and replays; a test feeds both the same out-of-order events and requires equal counts.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import datetime

WINDOWS_S: dict[str, float] = {"1h": 3_600.0, "24h": 86_400.0, "7d": 604_800.0}
PLURALS = {"click": "clicks", "inquiry": "inquiries"}
KINDS = tuple(PLURALS)
FEATURES = tuple(f"{PLURALS[kind]}_{name}" for kind in KINDS for name in WINDOWS_S)


class EngagementWindows:
    def __init__(self) -> None:
        self._times: dict[tuple[str, str], list[float]] = defaultdict(list)

    def add(self, listing_id: str, kind: str, at: datetime) -> None:
        if kind not in KINDS:
            raise ValueError(f"engagement kind must be one of {KINDS}, not {kind!r}")
        bisect.insort(self._times[(listing_id, kind)], at.timestamp())

    def counts(self, listing_id: str, at: datetime) -> dict[str, int]:
        """``clicks_1h`` … ``inquiries_7d`` for the listing as of ``at``."""
        t = at.timestamp()
        out: dict[str, int] = {}
        for kind in KINDS:
            times = self._times.get((listing_id, kind), [])
            upto = bisect.bisect_right(times, t)
            for name, seconds in WINDOWS_S.items():
                out[f"{PLURALS[kind]}_{name}"] = upto - bisect.bisect_right(times, t - seconds)
        return out

    def evict(self, now: datetime) -> int:
        """Drop what no window can count any more; returns how many events were dropped."""
        horizon = now.timestamp() - max(WINDOWS_S.values())
        dropped = 0
        for key in list(self._times):
            times = self._times[key]
            cut = bisect.bisect_right(times, horizon)
            if cut:
                del times[:cut]
                dropped += cut
            if not times:
                del self._times[key]
        return dropped
