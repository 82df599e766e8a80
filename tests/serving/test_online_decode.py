"""Decoding the reader's reply with remembered market resolutions gives what resolving every
row would: on first sight, when remembered, and with a market repeated in one batch."""

from __future__ import annotations

import numpy as np

from homeloop import online_layout as layout
from homeloop import online_reader
from homeloop.features import LISTING_FEATURES, MODEL_FEATURES
from homeloop.online_reader import _OWN, _SLOTS, decode_rows
from homeloop.price_levels import LEVEL_FEATURES, RESOLVED, resolve


def reply(values: np.ndarray) -> bytes:
    """The script's blob for rows of slot values (NaN = missing)."""
    return layout.double_blob(list(values.T))


def resolved_directly(values: np.ndarray) -> dict[str, np.ndarray]:
    width = len(LEVEL_FEATURES)
    levels = [
        {name: values[:, _OWN + level * width + j] for j, name in enumerate(LEVEL_FEATURES)}
        for level in range(3)
    ]
    return resolve(levels)[0]


def test_remembered_markets_resolve_as_every_row_would() -> None:
    online_reader._MARKETS.clear()
    rng = np.random.default_rng(11)
    markets = rng.uniform(1, 3_000, size=(4, _SLOTS - _OWN))
    markets[rng.random(markets.shape) < 0.4] = np.nan  # missing levels and figures
    markets[0, :] = np.nan  # a listing with no market at all
    for n in (1, 7, 60, 1):
        values = np.hstack([rng.uniform(0, 100, size=(n, _OWN)), markets[rng.integers(0, 4, n)]])
        ids = [f"L{i}" for i in range(n)]
        stamps = [str(1_700_000_000_000_000 + i).encode() for i in range(n)]
        got = decode_rows(ids, [reply(values), stamps])
        expected = resolved_directly(values)
        for name in RESOLVED:
            column = got.matrix[:, MODEL_FEATURES.index(name)]
            assert np.array_equal(column, expected[name], equal_nan=True), name
    assert 0 < len(online_reader._MARKETS) <= 4


def test_a_few_rows_decode_as_they_do_within_a_larger_reply() -> None:
    """One to four rows take a plain-Python path; the same rows at the head of a reply of
    eight (numpy's path) give the same matrix, stamps and found flags."""
    rng = np.random.default_rng(12)
    for trial in range(40):
        values = rng.uniform(-50, 3_000, size=(8, _SLOTS))
        values[rng.random(values.shape) < 0.3] = np.nan
        stamps = [None if rng.random() < 0.3 else str(1_700_000_000_000_000 + i).encode()
                  for i in range(8)]  # fmt: skip
        ids = [f"L{trial}-{i}" for i in range(8)]
        many = decode_rows(ids, [reply(values), stamps])
        n = 1 + trial % 4
        few = decode_rows(ids[:n], [reply(values[:n]), stamps[:n]])
        assert np.array_equal(few.matrix, many.matrix[:n], equal_nan=True)
        assert np.array_equal(few.updated_at_us, many.updated_at_us[:n], equal_nan=True)
        assert few.found.tolist() == many.found[:n].tolist() == [s is not None for s in stamps[:n]]
        first = MODEL_FEATURES.index(LISTING_FEATURES[0])  # a listing's own value, as sent
        assert np.array_equal(few.matrix[:, first], values[:n, 0], equal_nan=True)
