"""One analysis's options as a frozen dataclass: defaults from the class, the caller's keywords on top.

>>> from poslens.analyses.helix.options import Options
>>> resolve(Options, None, {"n_components": 5}, "helix").n_components
5
>>> resolve(Options, None, {"n_component": 5}, "helix")   # doctest: +ELLIPSIS
Traceback (most recent call last):
poslens.errors.InvalidInputError: helix has no option 'n_component' (did you mean 'n_components'...
>>> resolve(Options, None, {"n_components": "4"}, "helix")
Traceback (most recent call last):
poslens.errors.InvalidInputError: n_components must be an integer (got '4')
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import types
import typing
from typing import Any, TypeVar

from .errors import InvalidInputError, suggest

T = TypeVar("T")


def listed(values) -> list:
    """``values`` as a list, one string, path or object being one item: a bare "tiny" was read as its letters.

    >>> listed("tiny"), listed(("tiny", "tiny-attn"))
    (['tiny'], ['tiny', 'tiny-attn'])
    """
    return [values] if isinstance(values, (str, os.PathLike)) or not hasattr(values, "__iter__") else list(values)


def resolve(cls: type[T], options: T | None, overrides: dict[str, Any], what: str) -> T:
    """``options`` (or ``cls()``) with ``overrides`` replacing its fields; an unknown key, or (from an
    :func:`options_class`) a value of the wrong type, is one clear error."""
    if options is not None and not isinstance(options, cls):
        raise InvalidInputError(f"{what}'s options must be a {cls.__module__}.{cls.__qualname__}, not "
                                f"{type(options).__name__}; give options as keywords ({what}(weights, name=value)) "
                                "or build that class")
    names = [f.name for f in dataclasses.fields(cls)]
    for k in overrides:
        if k not in names:
            raise InvalidInputError(
                f"{what} has no option '{k}'{suggest(k, names)}; its options are: {', '.join(names)}")
    base = cls() if options is None else options  # the values' types are checked as the class is built (options_class)
    return dataclasses.replace(base, **overrides) if overrides else base


def options_class(cls: type[T]) -> type[T]:
    """A frozen dataclass whose every construction checks its fields' types (:func:`checked`) before
    the class's own ``__post_init__`` runs; so ``Options(n_components="4")`` is the same one clear
    error as ``helix(w, n_components="4")``, and a list given for a tuple field becomes a tuple.

    >>> @options_class
    ... class Demo:
    ...     k: int = 3
    >>> Demo(k="3")
    Traceback (most recent call last):
    poslens.errors.InvalidInputError: k must be an integer (got '3')
    """
    own = getattr(cls, "__post_init__", None)
    hints: dict[str, Any] = {}

    def __post_init__(self) -> None:
        if not hints:  # resolved once, on first use: the annotations are strings until then
            hints.update(typing.get_type_hints(type(self)))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            fixed = checked(f.name, value, hints[f.name])
            if fixed is not value:
                object.__setattr__(self, f.name, fixed)
        if own is not None:
            own(self)
        for f in dataclasses.fields(self):  # the range the CLI's flag states holds from Python and --set too
            value, spec = getattr(self, f.name), field_range(f)
            # NaN passes every range check written "if not lo <= x", and then means nothing
            if any(isinstance(v, numbers.Real) and v != v for v in (value if isinstance(value, tuple) else (value,))):
                raise InvalidInputError(f"{f.name} must be a number; got NaN")
            if spec and isinstance(value, numbers.Real) and not isinstance(value, bool) and not within(value, spec):
                raise InvalidInputError(f"{f.name} must lie in {spec}; got {value}")

    cls.__post_init__ = __post_init__
    return dataclasses.dataclass(frozen=True)(cls)


# Integer options where 0 means something (no warm-up, no traces, W_pos's row 0, layer 0, a seed);
# every other integer option with a positive default is a size or a count and must be >= 1.
ZERO_MEANS = frozenset({
    "seed", "warmup_steps", "synthetic_steps", "first_position", "n_generate", "generate", "n_traces", "traces",
    "layer", "neuron", "key_layer", "patch_point", "pos_pcs", "truncate_at",
})
FRACTION_WORDS = ("threshold", "frac", "fraction", "share", "quantile", "r2")


def implied_range(name: str, default) -> str | None:
    """The range of an option that declares none, from its name and default, as the CLI's flags, the
    report's ``--set`` and Options built in Python all take it: an integer with a positive default is a
    size or a count (>= 1; >= 0 where :data:`ZERO_MEANS` says 0 means something, or the default is 0); a
    float named like a threshold or fraction with a default in [0, 1] lies in [0, 1], another with a
    positive default is >= 0. A negative default (a position from the end), a bool or None implies none.

    >>> implied_range("n_seq", 8), implied_range("n_traces", 6), implied_range("threshold", 0.2)
    ('[1, inf)', '[0, inf)', '[0, 1]')
    """
    if isinstance(default, bool) or not isinstance(default, (int, float)) or default < 0:
        return None
    if isinstance(default, int):
        return "[0, inf)" if default == 0 or name in ZERO_MEANS else "[1, inf)"
    if any(w in name for w in FRACTION_WORDS) and default <= 1:
        return "[0, 1]"
    return "[0, inf)" if default > 0 else None


def field_range(f: dataclasses.Field) -> str | None:
    """An Options field's range: its ``metadata["range"]``, else :func:`implied_range`."""
    return f.metadata.get("range") or implied_range(f.name, None if f.default is dataclasses.MISSING else f.default)


def within(value: float, spec: str) -> bool:
    """Whether ``value`` lies in the interval ``spec`` ("[2, inf)", "(0, 1]").

    >>> within(1, "(1, inf)"), within(1, "[1, inf)")
    (False, True)
    """
    lo, hi = (float(x) for x in spec[1:-1].split(","))
    return (lo < value if spec[0] == "(" else lo <= value) and (value < hi if spec[-1] == ")" else value <= hi)


def check_choices(options: Any) -> None:
    """Every field declared with ``metadata={"choices": (...)}`` holds one of them (one clear error if not);
    the CLI offers the same choices (``cli.options.options_flags``).

    >>> from poslens.analyses.causal.options import PatchOptions
    >>> PatchOptions(mode="sideways")
    Traceback (most recent call last):
    poslens.errors.InvalidInputError: mode must be one of denoise, noise; got 'sideways'
    """
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if "choices" in f.metadata and value is not None:
            one_of(f.name, value, f.metadata["choices"])


def one_of(name: str, value: Any, allowed: tuple) -> None:
    """The one error for a value outside its choices, whether an Options field or a function's keyword."""
    if value not in allowed:
        raise InvalidInputError(f"{name} must be one of {', '.join(map(str, allowed))}; got '{value}'")


def checked(name: str, value: Any, tp: Any) -> Any:
    """``value`` for a field annotated ``tp``, or InvalidInputError naming the field, the value and the type.

    Checked here, before the dataclass's own ``__post_init__``, because a comparison there
    (``"4" < 1``) fails with a bare TypeError. A list given for a tuple field becomes a tuple
    (options stay hashable), and a lone item for a ``tuple[X, ...]`` field a tuple of one
    (``layers=0`` is layer 0). An int is a number for a float field; a bool is not an int.

    >>> checked("layers", [0, 1], tuple[int, ...] | None), checked("layers", 2, tuple[int, ...] | None)
    ((0, 1), (2,))
    >>> checked("threshold", True, float)
    Traceback (most recent call last):
    poslens.errors.InvalidInputError: threshold must be a number (got True)
    """
    arms = typing.get_args(tp) if isinstance(tp, types.UnionType) else (tp,)
    for arm in arms:
        if typing.get_origin(arm) is tuple and _fits(value, arm):
            return tuple(value)
    if any(_fits(value, arm) for arm in arms):
        return value
    for arm in arms:
        item = typing.get_args(arm)
        if typing.get_origin(arm) is tuple and item[1:] == (Ellipsis,) and _fits(value, item[0]):
            return (value,)
    raise InvalidInputError(f"{name} must be {_describe(tp)} (got {value!r})")


def _fits(value: Any, tp: Any) -> bool:
    if isinstance(tp, types.UnionType):
        return any(_fits(value, arm) for arm in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy's bool is not a Python bool
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"
    if tp is str:
        return isinstance(value, (str, os.PathLike))  # a file option takes a Path as well as its name
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        if origin is tuple and args[1:] != (Ellipsis,):
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
        return all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    return isinstance(value, tp)


_NAMES = {bool: ("True or False", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings"), type(None): ("None", "None")}


def _describe(tp: Any, plural: bool = False) -> str:
    if tp in _NAMES:
        return _NAMES[tp][plural]
    if isinstance(tp, types.UnionType):
        return " or ".join(_describe(arm, plural) for arm in typing.get_args(tp))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is dict:
        return f"{'dicts' if plural else 'a dict'} mapping {_describe(args[0], True)} to {_describe(args[1], True)}"
    if origin is tuple and args[1:] != (Ellipsis,):
        return f"{'lists' if plural else 'a list'} of {len(args)} {_describe(args[0], True)}"
    if origin in (tuple, list):
        return f"{'lists' if plural else 'a list'} of {_describe(args[0], True)}"
    return getattr(tp, "__name__", str(tp))
