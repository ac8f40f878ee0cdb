"""Results serialise to plain JSON types: arrays whole, with NaN as null and +-inf as "Infinity" / "-Infinity"."""

import json
import math

import numpy as np
import pytest
import torch

from poslens.results import to_jsonable


def _reference(x):
    """Element by element, the definition the fast array path must agree with."""
    if isinstance(x, np.ndarray):
        return _reference(x.tolist())
    if isinstance(x, list):
        return [_reference(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None if math.isnan(x) else "Infinity" if x > 0 else "-Infinity"
    return x


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8, np.bool_])
@pytest.mark.parametrize("shape", [(), (0,), (5,), (3, 4), (2, 0, 3), (2, 3, 4)])
def test_arrays_convert_like_element_by_element(dtype, shape):
    rng = np.random.default_rng(0)
    a = (rng.normal(size=shape) * 50).astype(dtype)
    if a.dtype.kind == "f" and a.size:
        flat = a.reshape(-1)
        flat[:: 3] = np.nan
        flat[1:: 4] = np.inf
        flat[2:: 5] = -np.inf
    got = to_jsonable(a)
    assert got == _reference(a)
    json.dumps(got, allow_nan=False)  # strict JSON: no NaN or inf left
    leaves = np.asarray(got, dtype=object).reshape(-1).tolist() if a.ndim else [got]
    assert all(type(v) in (float, int, bool, type(None)) or v in ("Infinity", "-Infinity") for v in leaves)


def test_tensors_scalars_and_containers():
    nan = float("nan")
    x = {1: (np.float32(0.5), np.int64(3), np.bool_(True)), "t": torch.tensor([[1.0, nan]]), "f": nan,
         "s": "a", "n": None, "arr": np.array(["a", "b"])}
    assert to_jsonable(x) == {"1": [0.5, 3, True], "t": [[1.0, None]], "f": None, "s": "a", "n": None,
                              "arr": ["a", "b"]}
