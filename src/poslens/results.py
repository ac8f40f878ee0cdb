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

import contextlib
import dataclasses
import functools
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .io import atomic_write_text


# JSON has no NaN or infinity. NaN is written null (what JavaScript and pandas write), and +-inf as these
# strings (protobuf's JSON spelling; float() and JavaScript's Number() read them): null alone would make an
# infinite half-distance or condition number come back as NaN. from_jsonable reads both back.
INF_STRINGS = {"Infinity": math.inf, "-Infinity": -math.inf}


def _float_jsonable(x: float) -> Any:
    return x if math.isfinite(x) else None if math.isnan(x) else "Infinity" if x > 0 else "-Infinity"


def to_jsonable(x: Any) -> Any:
    """Convert tensors, arrays, numpy scalars, dataclasses and paths to JSON types (NaN -> null,
    inf -> "Infinity", -inf -> "-Infinity").

    >>> to_jsonable([1.5, float("nan"), float("inf"), -float("inf")])
    [1.5, None, 'Infinity', '-Infinity']
    """
    t = type(x)
    if x is None or t is str or t is int or t is bool:
        return x
    if t is float:
        return _float_jsonable(x)
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
        return _float_jsonable(float(x))
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
        o[np.isnan(a)] = None
        o[a == np.inf] = "Infinity"
        o[a == -np.inf] = "-Infinity"
        return o.tolist()
    return to_jsonable(a.tolist())


_SCALARS = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _infinities(v: Any, strict: bool = False) -> Any:
    """``v`` with the strings "Infinity" and "-Infinity" read as floats, at any depth; with ``strict``,
    ValueError for any other string (an array of numbers, not of text)."""
    if isinstance(v, list):
        return [_infinities(x, strict) for x in v]
    if isinstance(v, dict):
        return {k: _infinities(x, strict) for k, x in v.items()}
    if isinstance(v, str):
        if v in INF_STRINGS:
            return INF_STRINGS[v]
        if strict:
            raise ValueError(f"expected a number, got {v[:40]!r}")
    return v


def from_jsonable(tp: Any, v: Any) -> Any:
    """``v``, a value of type ``tp`` as :func:`to_jsonable` wrote it, typed again: dataclasses
    (a :class:`Result` by its ``kind``), tuples, int dict keys, arrays, tensors, paths, NaN
    where a float was written as null and +-inf where it was written "Infinity" / "-Infinity" (also
    in an untyped (``Any``) field). TypeError or ValueError where ``v`` does not fit ``tp``.

    >>> from_jsonable(dict[int, tuple[float, ...]], {"3": [0.5, None, "-Infinity"]})
    {3: (0.5, nan, -inf)}
    """
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return _infinities(v)
    if origin in (typing.Union, types.UnionType):
        alts = [a for a in args if a is not type(None)]
        if v is None and len(alts) < len(args):
            return None
        for a in alts[:-1]:  # the first that fits: a dict is a dataclass only if its keys are its fields
            with contextlib.suppress(TypeError, ValueError):
                return from_jsonable(a, v)
        return from_jsonable(alts[-1], v)
    if tp in _SCALARS:
        if tp is float and (v is None or isinstance(v, str) and v in INF_STRINGS):
            return math.nan if v is None else INF_STRINGS[v]
        if not isinstance(v, _SCALARS[tp]) or (tp is not bool and isinstance(v, bool)):
            raise TypeError(f"expected {tp.__name__}, got {repr(v)[:40]}")
        return v  # an int in a float field stays an int, so it is written back as it was
    if v is None:
        raise TypeError(f"null where {getattr(tp, '__name__', tp)} was expected")
    if dataclasses.is_dataclass(tp):
        if not isinstance(v, dict):
            raise TypeError(f"expected {tp.__name__} (an object), got {repr(v)[:40]}")
        if issubclass(tp, Result):
            tp = tp.of_kind(v.get("kind", tp.kind))
            v = {k: x for k, x in v.items() if k != "kind"}
        unknown = sorted(set(v) - {f.name for f in dataclasses.fields(tp) if f.init})
        if unknown:
            raise TypeError(f"{tp.__name__} has no field {', '.join(unknown)}")
        kw = {}
        for k, x in v.items():
            try:
                kw[k] = from_jsonable(_hints(tp)[k], x)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{k}: {exc}") from None
        return tp(**kw)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(v, list):
            raise TypeError(f"expected a list, got {repr(v)[:40]}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(v):
                raise ValueError(f"expected {len(args)} items, got {len(v)}")
            return tuple(from_jsonable(a, x) for a, x in zip(args, v))
        items = [from_jsonable(args[0] if args else Any, x) for x in v]
        return items if (origin or tp) is list else tuple(items)
    if origin is dict or tp is dict:
        if not isinstance(v, dict):
            raise TypeError(f"expected an object, got {repr(v)[:40]}")
        kt, vt = args or (str, Any)
        return {(kt(k) if kt in (int, float) else k): from_jsonable(vt, x) for k, x in v.items()}
    if np.ndarray in (tp, origin):
        a = np.array(v)
        if a.dtype == object:  # nulls (NaN) in a float array, or a ragged one (an error)
            return np.array(_infinities(v, strict=True), dtype=float)
        if a.dtype.kind == "U":  # "Infinity" in a float array; else an array of text
            with contextlib.suppress(ValueError):
                return np.array(_infinities(v, strict=True), dtype=float)
        return a
    if getattr(tp, "__module__", None) == "torch":
        return sys.modules["torch"].as_tensor(from_jsonable(np.ndarray, v))
    return tp(v)  # a Path, or any class built from its JSON value


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

    @classmethod
    def of_kind(cls, kind: str) -> type[Result]:
        """The subclass of ``cls`` named ``kind`` (among those imported); TypeError if none is."""
        todo = [cls]
        while todo:
            c = todo.pop()
            if c.kind == kind:
                return c
            todo += c.__subclasses__()
        raise TypeError(f"a {kind!r} result, not {'one poslens knows' if cls is Result else f'a {cls.kind!r} one'}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        """The result :meth:`to_dict` wrote, typed again, as the subclass its ``kind`` names
        (:func:`poslens.load_result` also imports the analyses that define each kind).

        >>> Result.from_dict({"kind": "result", "model": "tiny", "processing": ["fold_ln"]})
        Result(model='tiny', processing=('fold_ln',), options={})
        """
        if cls is Result and isinstance(d, dict) and "kind" not in d:  # else "Result has no field ..." misleads
            raise InvalidInputError("not one analysis's result (no 'kind'): a report.json or sweep.json holds many; "
                                    "load a command's result.json, or a report.json stage's \"result\"")
        try:
            return from_jsonable(cls, d)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"cannot read this poslens result: {exc} (written by another version?)") from None

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON atomically; returns the path."""
        path = Path(path)
        try:
            atomic_write_text(path, self.to_json() + "\n")
        except OSError as exc:
            blocker = next((p for p in path.parents if p.is_file()), None)
            what = ("it is a folder; give a file name in it" if path.is_dir() else
                    f"{blocker} is a file, not a folder" if blocker else exc.strerror or str(exc))
            raise InvalidInputError(f"cannot write the result to {path}: {what}") from None
        return path
