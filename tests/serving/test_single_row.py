"""Serving's shortcuts give the same numbers as the long way: LightGBM's single-row API against
``Booster.predict``, and the cached partition of a key against Kafka's default partitioner."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
from aiokafka.partitioner import DefaultPartitioner

from homeloop.price_model import PriceModel, TargetSpec
from serving.publisher import _partition_index


def test_single_rows_are_predicted_exactly_as_booster_predict_does() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 6)) * 10
    y = x[:, 0] * 3 - x[:, 1] + rng.normal(size=400)
    booster = lgb.train(
        {"num_leaves": 15, "verbosity": -1, "num_threads": 1}, lgb.Dataset(x, y), 30
    )
    model = PriceModel("lightgbm", booster, tuple(f"f{i}" for i in range(6)), TargetSpec("price"))
    rows = rng.normal(size=(50, 6)) * 10
    rows[rng.random(rows.shape) < 0.2] = np.nan
    one_by_one = np.concatenate([model.raw(rows[i : i + 1]) for i in range(len(rows))])
    assert np.array_equal(one_by_one, booster.predict(rows, num_threads=1))
    assert np.array_equal(model.raw(rows), booster.predict(rows, num_threads=1))


def test_partitions_are_the_default_partitioners() -> None:
    for count in (1, 4, 12):
        partitions = list(range(count))
        for key in (b"L0000001", b"adhoc-1b4e28ba", "정자동".encode(), b""):
            expected = DefaultPartitioner()(key, partitions, partitions)
            assert partitions[_partition_index(key, count)] == expected
