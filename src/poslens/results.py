"""Base for analysis results: frozen dataclasses that serialise to JSON.

Every analysis returns a subclass of :class:`Result`. It records the model, the weight
processing and the options it ran with, so a number always says where it came from.

>>> @dataclass(frozen=True)
... class Demo(Result):
...     value: float = 0.0
>>> Demo(model="tiny", options={"k": 3}, value=1.5).to_dict()["value"]
1.5
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_write_text


def to_jsonable(x: Any) -> Any:
    """Convert tensors, arrays, numpy scalars, dataclasses and paths to JSON types (NaN/inf -> null)."""
    t = type(x)
    if x is None or t is str or t is int or t is bool:
        return x
    if t is float:
        return x if math.isfinite(x) else None
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        d = {f.name: to_jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
        return {"kind": x.kind, **d} if isinstance(x, Result) else d  # a result inside another keeps its kind
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _array_jsonable(x)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def canonical(obj) -> str:
    """The one JSON spelling of ``obj`` that cache keys and checksums are computed from."""
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _array_jsonable(a: np.ndarray) -> Any:
    # Whole arrays at once: element by element, a report's arrays took seconds to serialise.
    if a.dtype.kind in "iub":
        return a.tolist()
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if finite.all():
            return a.tolist()
        o = a.astype(object)
        o[~finite] = None
        return o.tolist()
    return to_jsonable(a.tolist())


@dataclass(frozen=True)
class ClaimRow:
    """One published figure against ours, as a result's ``checks`` carry it.

    ``claim`` is the :class:`~poslens.claims.Claim` id where the row comes from a declared
    claim; ``study`` names the source study where a module builds its rows directly.
    """

    what: str
    published: Any
    ours: Any
    reproduced: bool
    note: str = ""
    claim: str | None = None
    study: str | None = None


@dataclass(frozen=True)
class Result:
    """Fields every result carries; subclasses add their own (all with defaults)."""

    model: str = ""
    processing: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    kind = "result"  # subclasses name themselves ("helix", "dup_heads", ...)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON atomically; returns the path."""
        path = Path(path)
        atomic_write_text(path, self.to_json() + "\n")
        return path
