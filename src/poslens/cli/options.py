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


def options_flags(cls, skip: tuple[str, ...] = (), aliases: dict[str, str] | None = None, prefix: str = ""):
    """Decorator adding ``--field-name`` for every field of ``cls`` (booleans as ``--x/--no-x``).

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
                fn = click.option(flag, *extra, dest + f.name, type=_type(f), default=f.default, show_default=True,
                                  help=help_)(fn)
        return fn

    return deco


def build_options(cls, kwargs: dict, prefix: str = "", **given):
    """``cls`` from the matching entries of ``kwargs`` (removed from it) and ``given``;
    ``__post_init__`` validates them."""
    dest = prefix.replace("-", "_")
    names = {f.name for f in dataclasses.fields(cls)}
    picked = {k[len(dest):]: kwargs.pop(k) for k in list(kwargs) if k.startswith(dest) and k[len(dest):] in names}
    return cls(**picked, **given)
