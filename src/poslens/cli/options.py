"""Command-line flags generated from an analysis's frozen ``Options`` dataclass, so an option
(its type, default and help) is declared once, in the analysis.

>>> from poslens.analyses.helix.options import Options
>>> @click.command()
... @options_flags(Options)
... def cmd(**kw):
...     opts = build_options(Options, kw)      # pops the Options fields out of kw
>>> "--n-components" in cmd.get_help(click.Context(cmd))
True
"""

from __future__ import annotations

import dataclasses
import math

import click

from ..options import field_range

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
_WORDS = {int: ("integers", "1,2,3"), float: ("numbers", "0.1,1,10"), str: ("names", "a,b")}


class CommaList(click.ParamType):
    """``1,2,3`` -> ``(1, 2, 3)`` for a ``tuple[int, ...]`` field (floats and names alike); blank -> None
    where the field takes None (its default), else the empty tuple (which the options' own checks judge)."""

    def __init__(self, item: type, blank: tuple | None = None):
        self.item = item
        self.blank = blank
        self.name = _WORDS[item][0]

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, (tuple, list)):
            return None if value is None else tuple(value)
        parts = [p.strip() for p in str(value).split(",") if p.strip()]
        if not parts:
            return self.blank
        try:
            return tuple(self.item(p) for p in parts)
        except ValueError:
            words, example = _WORDS[self.item]
            self.fail(f"'{value}' is not a comma-separated list of {words} (e.g. {example})", param, ctx)


def _type(f: dataclasses.Field):
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    head = t.split("|")[0].strip()
    if head.startswith("tuple[") and head.endswith(", ...]"):
        optional = "None" in [x.strip() for x in t.split("|")]
        return CommaList(_TYPES[head[6:-6].strip()], blank=None if optional else ())
    return _TYPES.get(head, str)


def _interval(spec: str, integer: bool = False) -> click.FloatRange | click.IntRange:
    """``"(0, 1]"`` -> ``FloatRange(0, 1, min_open=True)``; an infinite end is no bound. For an
    integer option, the closed ``IntRange`` of the same integers (``"(1, inf)"`` -> ``x>=2``).

    >>> _interval("[2, inf)", integer=True)
    <IntRange x>=2>
    """
    lo, hi = (float(x) for x in spec[1:-1].split(","))
    lo, hi = (None if lo == float("-inf") else lo), (None if hi == float("inf") else hi)
    if integer:  # --help then says "x>=2", not "x>1.0" for a count
        return click.IntRange(None if lo is None else math.floor(lo) + 1 if spec[0] == "(" else math.ceil(lo),
                              None if hi is None else math.ceil(hi) - 1 if spec[-1] == ")" else math.floor(hi))
    return click.FloatRange(lo, hi, min_open=spec[0] == "(", max_open=spec[-1] == ")")


def options_flags(cls, skip: tuple[str, ...] = (), aliases: dict[str, str] | None = None, prefix: str = ""):
    """Decorator adding ``--field-name`` for every field of ``cls`` (booleans as ``--x/--no-x``; a
    field with ``metadata["choices"]`` as a ``click.Choice``; one with ``metadata["range"]`` in interval
    notation, e.g. ``"(0, 1]"`` or ``"(0, inf)"``, as that range, so --help states what the
    Options accept).

    ``aliases`` gives a field one more spelling, an older flag that keeps working (for a
    boolean, click's form: ``"--bos"`` adds an "on" flag, ``" /--no-spectra"`` an "off" one).
    ``prefix`` namespaces the flags and their parameters (``sphere-``: ``--sphere-n-trials``
    fills ``sphere_n_trials``), so two analyses' options can share a command.
    """
    dest = prefix.replace("-", "_")

    def deco(fn):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip:
                continue
            flag = "--" + prefix + f.name.replace("_", "-")
            help_ = f.metadata.get("help", "")
            extra = [aliases[f.name]] if aliases and f.name in aliases else []
            if _type(f) is bool:
                fn = click.option(f"{flag}/--no-{flag[2:]}", *extra, dest + f.name, default=f.default, show_default=True,
                                  help=help_)(fn)
            else:
                default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
                choices = f.metadata.get("choices")
                kind = click.Choice(choices) if choices else _type(f)
                if not choices and (spec := field_range(f)) and _type(f) in (int, float):
                    kind = _interval(spec, integer=_type(f) is int)
                fn = click.option(flag, *extra, dest + f.name, type=kind, default=default, show_default=True,
                                  help=help_)(fn)
        return fn

    return deco


def build_options(cls, kwargs: dict, flag_prefix: str = "", **given):
    """``cls`` from the matching entries of ``kwargs`` (removed from it) and ``given``;
    ``__post_init__`` validates them. ``flag_prefix`` is the ``prefix`` the flags were made with."""
    dest = flag_prefix.replace("-", "_")
    names = {f.name for f in dataclasses.fields(cls)}
    picked = {k[len(dest):]: kwargs.pop(k) for k in list(kwargs) if k.startswith(dest) and k[len(dest):] in names}
    return cls(**picked, **given)
