"""One analysis's options as a frozen dataclass: defaults from the class, the caller's keywords on top.

>>> from poslens.analyses.helix.options import Options
>>> resolve(Options, None, {"n_components": 5}, "helix").n_components
5
>>> resolve(Options, None, {"n_component": 5}, "helix")   # doctest: +ELLIPSIS
Traceback (most recent call last):
poslens.errors.InvalidInputError: helix has no option 'n_component' (did you mean 'n_components'...
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from .errors import InvalidInputError, suggest

T = TypeVar("T")


def resolve(cls: type[T], options: T | None, overrides: dict[str, Any], what: str) -> T:
    """``options`` (or ``cls()``) with ``overrides`` replacing its fields (a list given for a tuple
    field becomes a tuple, so options stay hashable); an unknown key is one clear error."""
    if options is not None and not isinstance(options, cls):
        raise InvalidInputError(f"{what}'s options must be a {cls.__module__}.{cls.__qualname__}, not "
                                f"{type(options).__name__}; give options as keywords ({what}(weights, name=value)) "
                                "or build that class")
    names = [f.name for f in dataclasses.fields(cls)]
    for k in overrides:
        if k not in names:
            raise InvalidInputError(
                f"{what} has no option '{k}'{suggest(k, names)}; its options are: {', '.join(names)}")
    tuples = {f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple[")}
    overrides = {k: tuple(v) if k in tuples and isinstance(v, list) else v for k, v in overrides.items()}
    base = cls() if options is None else options
    return dataclasses.replace(base, **overrides) if overrides else base


def check_choices(options: Any) -> None:
    """Every field declared with ``metadata={"choices": (...)}`` holds one of them (one clear error if not);
    the CLI offers the same choices (``cli.options.options_flags``).

    >>> from poslens.analyses.causal.options import PatchOptions
    >>> PatchOptions(mode="sideways")
    Traceback (most recent call last):
    poslens.errors.InvalidInputError: mode must be one of denoise, noise; got 'sideways'
    """
    for f in dataclasses.fields(options):
        allowed = f.metadata.get("choices")
        value = getattr(options, f.name)
        if allowed is not None and value is not None and value not in allowed:
            raise InvalidInputError(f"{f.name} must be one of {', '.join(map(str, allowed))}; got '{value}'")
