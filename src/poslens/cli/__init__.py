"""The ``poslens`` command line: a thin layer over the library.

Each command lives in its own module under ``poslens.cli`` and is registered in
``COMMAND_MODULES``; it parses options, calls the library and writes files.
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
import warnings

import click

from ..errors import Interrupted, PoslensError
from ..models.allocator import keep_freed_memory
from .common import bound_numeric_options, guard_device_options, output_candidates, remove_new_outputs

# module name -> command names it defines (imported lazily so `poslens --help` stays fast)
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "models": ("models", "inspect"),
    "train": ("train",),
    "report": ("report",),
    "helix": ("helix",),
    "geometry": ("spectra", "subspaces", "lens"),
    "probe": ("probe",),
    "duplicate": ("dup-heads", "dup-neurons"),
    "twisted_pair": ("twisted-pair",),
    "causal": ("ablate", "patch"),
    "positional": ("sinks", "position-probe", "rotary"),
    "sweep": ("sweep",),
}


class LazyGroup(click.Group):
    """Commands imported on first use; every mistake a user can make ends in one line, exit 2,
    and every warning is one line too.

    Each command is prepared once: its numeric options get ranges and its ``--device`` a
    check (both while parsing, before any work), and a command that fails removes the
    output directories it created, so nothing half-written is left behind.
    """

    def list_commands(self, ctx):
        return sorted(c for cmds in COMMAND_MODULES.values() for c in cmds)

    def get_command(self, ctx, name):
        for mod, cmds in COMMAND_MODULES.items():
            if name in cmds:
                module = importlib.import_module(f"poslens.cli.{mod}")
                return _prepared(getattr(module, name.replace("-", "_") + "_cmd"))
        return None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        keep_freed_memory()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _warning_line
                rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            _fail((_model_hint(exc) or exc.format_message().rstrip(".")) + where, 2)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            _fail("aborted", 1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PoslensError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt as exc:
            said = str(exc) if isinstance(exc, Interrupted) else "finished work is kept, run the same command to resume"
            click.echo("poslens: interrupted; " + said, err=True)
            sys.exit(130)


def _model_hint(exc: click.UsageError) -> str | None:
    """``poslens report gpt2``: the model is an option here, and the message says so."""
    m = re.match(r"Got unexpected extra arguments? \((.+)\)", exc.format_message())
    cmd = exc.ctx.command if exc.ctx is not None else None
    if m is None or cmd is None or not any(getattr(p, "name", None) == "model" for p in cmd.params):
        return None
    given = m.group(1).split()
    flags = " ".join(f"--model {g}" for g in given)
    return f"unexpected argument{'s' if len(given) > 1 else ''} {' '.join(given)}: give a model with --model ({exc.ctx.command_path} {flags})"


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    # A user of the command line wants the advice, not the source line that raised it.
    click.echo("poslens: warning: " + " ".join(str(message).split()), err=True)


def _fail(message: str, code: int):
    click.echo("poslens: error: " + " ".join(str(message).split()), err=True)
    sys.exit(code)


def _prepared(cmd: click.Command) -> click.Command:
    if getattr(cmd, "_poslens_prepared", False):
        return cmd
    bound_numeric_options(cmd)
    guard_device_options(cmd)
    _clean_up_on_error(cmd)
    cmd._poslens_prepared = True
    return cmd


def _clean_up_on_error(cmd: click.Command) -> None:
    for sub in getattr(cmd, "commands", {}).values():
        _clean_up_on_error(sub)
    if cmd.callback is None or isinstance(cmd, click.Group):
        return
    callback = cmd.callback

    @functools.wraps(callback)
    def run(*args, **kwargs):
        before = {p: p.exists() for p in output_candidates(cmd.name, kwargs)}
        try:
            return callback(*args, **kwargs)
        except (PoslensError, click.ClickException):
            remove_new_outputs(before)
            raise

    cmd.callback = run


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="poslens")
def cli():
    """poslens: how GPT-2-style transformers know where each token is.

    The analysis commands take --model (a name from `poslens models`, a hub id, or a
    checkpoint directory; default: the embedded `tiny`), --out DIR for result.json and
    figures, and --json to print the result; `inspect MODEL` reads one checkpoint as stored.
    """


def main(argv=None):
    cli.main(args=argv, prog_name="poslens")
