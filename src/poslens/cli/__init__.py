"""The ``poslens`` command line: a thin layer over the library.

Each command lives in its own module under ``poslens.cli`` and is registered in
``COMMAND_MODULES``; it parses options, calls the library and writes files.
"""

from __future__ import annotations

import importlib
import sys

import click

from ..errors import PoslensError

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
    def list_commands(self, ctx):
        return sorted(c for cmds in COMMAND_MODULES.values() for c in cmds)

    def get_command(self, ctx, name):
        for mod, cmds in COMMAND_MODULES.items():
            if name in cmds:
                module = importlib.import_module(f"poslens.cli.{mod}")
                return getattr(module, name.replace("-", "_") + "_cmd")
        return None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PoslensError as exc:
            click.echo(f"poslens: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("poslens: interrupted; finished work is kept, run the same command to resume", err=True)
            sys.exit(130)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="poslens")
def cli():
    """poslens: how GPT-2-style transformers know where each token is.

    Every command takes --model (a name from `poslens models`, a hub id, or a checkpoint
    directory; default: the embedded `tiny`), --out DIR for result.json and figures, and
    --json to print the result.
    """


def main(argv=None):
    cli.main(args=argv, prog_name="poslens")
