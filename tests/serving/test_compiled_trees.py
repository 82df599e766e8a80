"""Compiled trees give LightGBM's own answers, are compiled once per model and machine and
then loaded from disk, and a model whose trees cannot be compiled still serves (through
LightGBM) rather than failing its load."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from homeloop.compiled_trees import compile_lightgbm, prune
from homeloop.features import MODEL_FEATURES
from homeloop.price_model import PriceModel, TargetSpec
from serving import golden
from serving.model_slots import compiled


def booster(seed: int, n_features: int, rounds: int = 40) -> lgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, n_features)) * 10
    x[rng.random(x.shape) < 0.15] = np.nan  # trees that learned where missing values go
    y = np.nan_to_num(x[:, 0]) * 3 - np.nan_to_num(x[:, 1]) + rng.normal(size=600)
    params = {"num_leaves": 31, "verbosity": -1, "num_threads": 1, "seed": seed}
    return lgb.train(params, lgb.Dataset(x, y), rounds)


def rows(seed: int, n: int, n_features: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = rng.normal(size=(n, n_features)) * 12
    out[rng.random(out.shape) < 0.25] = np.nan
    return out


def test_compiled_trees_answer_as_lightgbm_does(tmp_path: Path) -> None:
    model = booster(1, 6)
    predict = compile_lightgbm(model, tmp_path)
    x = rows(2, 300, 6)
    assert np.allclose(predict(x), model.predict(x, num_threads=1), rtol=1e-12, atol=1e-12)
    one_by_one = np.concatenate([predict(x[i : i + 1]) for i in range(20)])
    assert np.allclose(one_by_one, model.predict(x[:20], num_threads=1), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="6 features"):
        predict(x[:, :5])


def test_predicting_leaves_no_garbage_for_the_collector(tmp_path: Path) -> None:
    """Reference cycles per call made the collector pause for ms under load."""
    predict = compile_lightgbm(booster(1, 6), tmp_path)
    x = rows(2, 10, 6)
    gc.collect()
    gc.disable()
    try:
        for i in range(200):
            predict(x[i % 10 : i % 10 + 1])
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_a_model_is_compiled_once_then_loaded_from_disk(tmp_path: Path) -> None:
    first = booster(1, 6)
    compile_lightgbm(first, tmp_path)
    code = sorted(tmp_path.glob("*.o"))
    assert len(code) == 1 and not list(tmp_path.glob("*.partial"))
    written = code[0].stat().st_ino  # a compile writes a new file in its place

    again = compile_lightgbm(lgb.Booster(model_str=first.model_to_string()), tmp_path)
    assert sorted(tmp_path.glob("*.o")) == code and code[0].stat().st_ino == written
    x = rows(3, 50, 6)
    assert np.allclose(again(x), first.predict(x, num_threads=1), rtol=1e-12, atol=1e-12)

    other = booster(2, 6)  # another model: its own code, its own answers
    compile_lightgbm(other, tmp_path)
    assert len(list(tmp_path.glob("*.o"))) == 2


def test_only_the_most_recently_used_models_stay_on_disk(tmp_path: Path) -> None:
    models = [booster(seed, 4, rounds=5) for seed in range(3)]
    for model in models:
        compile_lightgbm(model, tmp_path)
    compile_lightgbm(models[0], tmp_path)  # used again: now the most recent
    first = {path.stem for path in tmp_path.glob("*.o")}
    assert len(first) == 3
    assert len(prune(tmp_path, keep=2)) == 1
    kept = {path.stem for path in tmp_path.glob("*.o")}
    assert len(kept) == 2 and {p.stem for p in tmp_path.glob("*.txt")} == kept
    again = compile_lightgbm(models[0], tmp_path)  # kept: loaded, not compiled again
    x = rows(5, 20, 4)
    assert np.allclose(again(x), models[0].predict(x, num_threads=1), rtol=1e-12)
    assert {path.stem for path in tmp_path.glob("*.o")} == kept


def price_model(seed: int) -> PriceModel:
    return PriceModel(
        "lightgbm", booster(seed, len(MODEL_FEATURES), 30), MODEL_FEATURES, TargetSpec("price")
    )


def test_serving_predicts_through_compiled_trees_checked_on_the_golden_set(
    tmp_path: Path,
) -> None:
    plain = price_model(4)
    fast = compiled(plain, tmp_path / "trees", "v1")
    assert fast.compiled is not None and plain.compiled is None
    x = golden.golden_rows()
    assert np.allclose(fast.predict(x), plain.predict(x), rtol=1e-9)
    assert np.allclose(fast.raw(x[:1]), plain.raw(x[:1]), rtol=1e-9)


def test_trees_that_cannot_be_compiled_leave_lightgbm_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "trees"
    blocked.write_text("a file where the cache directory should be")
    plain = price_model(5)
    with caplog.at_level(logging.WARNING, logger="serving.model_slots"):
        served = compiled(plain, blocked, "v7")
    assert served is plain and served.compiled is None
    assert "v7: serving with LightGBM's predictor" in caplog.text
    x = golden.golden_rows()
    assert np.array_equal(served.raw(x), plain.booster.predict(x, num_threads=1))
