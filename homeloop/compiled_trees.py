"""LightGBM models compiled to machine code (lleaves), for serving.

LightGBM's predictor walks every tree for every row through its general-purpose code: 100
rows of the price model (≤ 200 trees of 63 leaves) took 0.9 ms here, and under load the
largest part of a batch request. lleaves turns the trees into one native function; the same
rows took 0.2 ms, with the same outputs to ~1e-14 (tl2cgen's C code did 0.64 ms and ONNX
Runtime 0.66 ms on the same rows). Compiling with inlining off takes ~2 s (12 s with it,
and the code was slower), so the object code is kept on disk, named by a hash of the model
and of the machine it was compiled for, and shared by the server's workers and restarts; a
file lock keeps two processes from compiling the same model at once, and the file only
appears once complete.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

# Models whose compiled code stays on disk (a weekly retrain adds one; a rollback to one
# pruned compiles it again).
KEEP = 8


def _machine() -> str:
    """What the object code depends on besides the model: the CPU it was compiled for and
    the compiler."""
    import llvmlite.binding as llvm

    return "|".join(
        (
            llvm.get_host_cpu_name(),
            llvm.get_host_cpu_features().flatten(),
            version("lleaves"),
            version("llvmlite"),
        )
    )


def compile_lightgbm(booster: Any, cache_dir: Path) -> CompiledTrees:
    """``booster.predict(rows)`` for 2-D float64 rows, compiled (or loaded from
    ``cache_dir``). Raises whatever the compiler raises: callers fall back to LightGBM."""
    import lleaves

    text = booster.model_to_string()
    digest = hashlib.sha256(f"{_machine()}\n{text}".encode()).hexdigest()[:32]
    cache_dir.mkdir(parents=True, exist_ok=True)
    model_file, code = cache_dir / f"{digest}.txt", cache_dir / f"{digest}.o"
    with open(cache_dir / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second worker waits, then loads the first's
        if not model_file.exists():
            _write_atomically(model_file, text.encode())
        model = lleaves.Model(model_file=str(model_file))
        if code.exists():
            model.compile(cache=str(code), finline=False)
        else:
            fd, partial = tempfile.mkstemp(dir=cache_dir, suffix=".partial")
            os.close(fd)
            os.unlink(partial)  # lleaves writes its cache only where no file is
            model.compile(cache=partial, finline=False)
            os.replace(partial, code)
        os.utime(code)  # last used: what pruning keeps
    prune(cache_dir)
    return CompiledTrees(model, booster.num_feature())


def prune(cache_dir: Path, keep: int = KEEP) -> list[str]:
    """Delete all but the ``keep`` most recently used models' files (~2 MB each); a model
    pruned and loaded again is compiled again. Returns the digests deleted."""
    used = sorted(cache_dir.glob("*.o"), key=lambda path: path.stat().st_mtime, reverse=True)
    gone = [path.stem for path in used[keep:]]
    for digest in gone:
        for suffix in (".o", ".txt", ".lock"):
            (cache_dir / f"{digest}{suffix}").unlink(missing_ok=True)
    return gone


class CompiledTrees:
    """``predict(rows)`` through the compiled function, called with plain addresses:
    ``Model.predict`` passes ``ndarray.ctypes.data_as`` pointers, which leave reference
    cycles behind on every call for the collector to find (pauses of several ms under
    load, as with LightGBM's own API). Holds the model, whose engine owns the code."""

    def __init__(self, model: Any, n_features: int) -> None:
        self._model = model
        self._n_features = n_features
        address = ctypes.cast(model._c_entry_func, ctypes.c_void_p).value
        if not address:
            raise RuntimeError("the compiled model has no entry point")
        self._entry = _ENTRY(address)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if rows.ndim != 2 or rows.shape[1] != self._n_features:
            raise ValueError(
                f"expected rows of {self._n_features} features, got shape {rows.shape}"
            )
        rows = np.ascontiguousarray(rows, np.float64)
        out = np.empty(len(rows), dtype=np.float64)
        self._entry(rows.ctypes.data, out.ctypes.data, 0, len(rows))
        return out


# lleaves' entry point (rows, results, first row, end row), with untyped pointers.
_ENTRY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32)


def _write_atomically(path: Path, data: bytes) -> None:
    fd, partial = tempfile.mkstemp(dir=path.parent, suffix=".partial")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(partial, path)
