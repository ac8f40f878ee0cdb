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
    """``options`` (or ``cls()``) with ``overrides`` replacing its fields; an unknown key is one clear error."""
    names = [f.name for f in dataclasses.fields(cls)]
    for k in overrides:
        if k not in names:
            raise InvalidInputError(
                f"{what} has no option '{k}'{suggest(k, names)}; its options are: {', '.join(names)}")
    base = cls() if options is None else options
    return dataclasses.replace(base, **overrides) if overrides else base
