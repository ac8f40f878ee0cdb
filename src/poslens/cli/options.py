"""Command-line flags generated from an analysis's frozen ``Options`` dataclass, so an option
(its type, default and help) is declared once, in the analysis.

>>> @click.command()
... @options_flags(Options)
... def cmd(**kw):
...     opts = build_options(Options, kw)      # pops the Options fields out of kw
"""

from __future__ import annotations

import dataclasses

import click

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _type(f: dataclasses.Field):
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return _TYPES.get(t.split("|")[0].strip(), str)


def options_flags(cls, skip: tuple[str, ...] = (), aliases: dict[str, str] | None = None):
    """Decorator adding ``--field-name`` for every field of ``cls`` (booleans as ``--x/--no-x``);
    ``aliases`` gives a field one more spelling (an older flag that keeps working)."""

    def deco(fn):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip:
                continue
            flag = "--" + f.name.replace("_", "-")
            help_ = f.metadata.get("help", "")
            if _type(f) is bool:
                fn = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=f.default, show_default=True, help=help_)(fn)
            else:
                names = [flag] + ([aliases[f.name]] if aliases and f.name in aliases else [])
                fn = click.option(*names, f.name, type=_type(f), default=f.default, show_default=True, help=help_)(fn)
        return fn

    return deco


def build_options(cls, kwargs: dict):
    """``cls`` from the matching entries of ``kwargs`` (removed from it); ``__post_init__`` validates them."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: kwargs.pop(k) for k in list(kwargs) if k in names})
