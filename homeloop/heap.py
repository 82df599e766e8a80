"""The garbage collector's settings for the long-running hot processes (API, stream worker).

Both processes import large libraries and load models at start-up, then allocate many
short-lived objects per request or event. With the defaults, objects that merely outlive
a few hundred allocations (a batch of decoded events) are promoted, and every full
collection then walks the whole start-up heap: in the stream worker that was 40 full
collections of up to 280 ms in 20 s of load (a third of its CPU), in the API pauses of
100–600 ms at the p99. So once started, what exists is moved out of the collector's sight
(``gc.freeze``) and young collections run less often, so a batch dies young.
"""

from __future__ import annotations

import gc

# Young collections every this many net allocations: the API allocates per request and
# wants short pauses; the stream worker allocates per batch (up to ~30,000 objects for
# 2,000 events) and wants its batches to die before they are promoted.
API_YOUNG = 10_000
WORKER_YOUNG = 50_000


def settle(young: int) -> None:
    """Freeze everything allocated so far and collect the young generation every ``young``
    allocations. Call again after a later load (a model, a registry client): freezing is
    cheap, and what it froze is never scanned again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young, 20, 20)
