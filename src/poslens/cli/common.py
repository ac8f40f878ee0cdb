"""Options shared by every command, named the same everywhere, and output helpers."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidInputError
from ..io import atomic_write_text, writable_dir

DEFAULT_MODEL = "tiny"


def model_option(multiple: bool = False, null: bool = True):
    """``--model``; ``null``: the command takes a model's null (``random:SPEC``), not only checkpoints as stored."""
    help_ = "Model: a name from `poslens models`, a hub id, or a checkpoint directory; NAME@REV for a revision" + (
        "; random:SPEC (random=SEED:SPEC) for its null, every tensor redrawn at its own mean and std." if null else ".")
    if multiple:
        return click.option("--model", "-m", "model", multiple=True, help=help_ + " Repeat for several.")
    return click.option("--model", "-m", "model", default=DEFAULT_MODEL, show_default=True, help=help_)


def _out_callback(ctx, param, value):
    # click reads an empty --out as ".", which would scatter results over the current directory
    # (an unset shell variable, `-o "$DIR"`, is the usual way to get here)
    if value is not None and not value.strip():
        raise click.BadParameter("an empty path; give a directory (e.g. --out results)", ctx, param)
    return Path(value) if value is not None else None


def out_option_with(help_: str):
    """``--out`` with the command's own description of what lands there."""
    return click.option("--out", "-o", type=click.Path(file_okay=False), default=None, callback=_out_callback, help=help_)


out_option = out_option_with("Directory for result.json and figures (created; default: poslens-out/COMMAND).")
device_option = click.option("--device", default="cpu", show_default=True, help="torch device: cpu, cuda, cuda:1 ...")
dtype_option = click.option(
    "--dtype", type=click.Choice(["float32", "bfloat16", "float64"]), default="float32", show_default=True,
    help="Compute dtype of forward passes.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
seed_option = click.option("--seed", default=0, show_default=True, help="Random seed.")


def common(fn):
    """--model, --out, --device, --dtype, --json together."""
    for opt in reversed((model_option(), out_option, device_option, dtype_option, json_option)):
        fn = opt(fn)
    return fn


def out_dir(out: Path | None, command: str) -> Path:
    """``out`` (default: poslens-out/COMMAND), created and checked writable."""
    return writable_dir(out if out is not None else Path("poslens-out") / command, "results")


WRITTEN = ".poslens-written"  # what the last command wrote into its --out, one path per line


def forget_stale(out: Path, written: list[Path]) -> None:
    """Delete the files the previous command wrote into ``out`` that this one did not (a figure
    of another model or option left beside this run's result.json would pass for this run's),
    then record this run's. Files poslens did not write are never touched."""
    root = out.resolve()
    # every HTML figure loads the plotly.min.js plotly writes beside it: that file is this run's too
    written = [*map(Path, written), *(Path(p).parent / "plotly.min.js" for p in written if Path(p).suffix == ".html")]
    now = {str(p.resolve().relative_to(root)) for p in written if p.is_file() and p.resolve().is_relative_to(root)}
    try:
        before = (out / WRITTEN).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        before = []
    for rel in set(before) - now:
        old = root / rel
        # only an entry as poslens writes one (relative, no ".."), naming a plain file whose folder is
        # inside out: a hand-edited entry, or a link put where a figure was, leads to no one else's file
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not old.parent.resolve().is_relative_to(root):
            continue
        if old.is_file() and not old.is_symlink():
            try:
                old.unlink()
            except OSError:  # a file this user may not remove stays, listed, for a later run to retry
                now.add(rel)
    atomic_write_text(out / WRITTEN, "".join(f"{r}\n" for r in sorted(now)))


def emit(result, out: Path, as_json: bool, summary: str | None = None, figures: list[Path] | None = None) -> None:
    """Write result.json into ``out`` and print either the JSON or a short summary. What an
    earlier command wrote into ``out`` and this one did not is removed (:func:`forget_stale`)."""
    path = result.save(out / "result.json")
    forget_stale(out, [path, *(figures or [])])
    if as_json:
        click.echo(result.to_json())
        return
    if summary:
        click.echo(summary)
    click.echo(f"wrote {path}")
    for f in figures or []:
        click.echo(f"wrote {f}")


def finish(result, out: Path | None, command: str, as_json: bool, lines: list[str], draw=None) -> None:
    """:func:`emit` into ``out`` (default: poslens-out/COMMAND), with the figures ``draw(result, dir)`` writes."""
    d = out_dir(out, command)
    emit(result, d, as_json, "\n".join(lines), draw(result, d) if draw else [])


def text_arg(value: str | None, flag: str) -> str | None:
    """A text flag's value: the text itself, or ``@FILE`` for a file's contents (``~`` expanded).

    >>> text_arg("And God said", "--text")
    'And God said'
    """
    if value is None or not value.startswith("@"):
        return value
    from ..data.sequences import read_corpus

    if not value[1:].strip():
        raise InvalidInputError(f"{flag} @ needs a file's path after it, e.g. {flag} @prompt.txt")
    return read_corpus(value[1:], what=f"{flag} file")


def parse_heads(spec: str | None) -> list[tuple[int, int]] | None:
    """'0.1,0.5,0.10' -> [(0, 1), (0, 5), (0, 10)] (blank entries are skipped, as in :func:`parse_ints`).

    >>> parse_heads("0.1, ,1.10")
    [(0, 1), (1, 10)]
    """
    if not spec:
        return None
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        try:
            l, h = part.split(".")
            out.append((int(l), int(h)))
        except ValueError:
            raise InvalidInputError(f"head '{part}' is not LAYER.HEAD (e.g. 0.5)") from None
        if min(out[-1]) < 0:
            raise InvalidInputError(f"head '{part}': layers and heads are counted from 0 (e.g. 0.5)")
    return out or None


def parse_ints(spec: str | None, what: str, example: str = "0,5", items: str = "integers") -> list[int] | None:
    """'0,5,-1' -> [0, 5, -1]; None when ``spec`` is empty or None (blank entries are skipped).

    ``what`` (the option, e.g. "--layers"), ``example`` and ``items`` word the error:
    "--layers 'a,b' is not a comma-separated list of integers (e.g. 0,5)".

    >>> parse_ints("0, 5,,-1", "--layers")
    [0, 5, -1]
    """
    if not spec:
        return None
    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise InvalidInputError(f"{what} '{spec}' is not a comma-separated list of {items} (e.g. {example})") from None


# ---- option ranges ---------------------------------------------------------------------------

def bound_numeric_options(cmd: click.Command) -> click.Command:
    """Give every plain INT/FLOAT option of ``cmd`` (and its sub-commands) a range, so a zero,
    negative or out-of-range size is refused while parsing, before any work starts: the range
    :func:`poslens.options.implied_range` gives its name (any of its spellings) and default, the
    one Options built in Python and the report's ``--set`` hold too. An option without a default
    is a size (an integer >= 1, or >= 0 where 0 means something; a float >= 0). Options declared
    with their own range keep it.

    >>> cmd = bound_numeric_options(click.Command("x", params=[click.Option(["--n"], default=3, type=int)]))
    >>> cmd.params[0].type
    <IntRange x>=1>
    """
    from ..options import ZERO_MEANS, implied_range
    from .options import _interval

    for p in cmd.params:
        if not isinstance(p, click.Option) or p.type not in (click.INT, click.FLOAT) or p.multiple:
            continue
        names = [o.lstrip("-").replace("-", "_") for o in p.opts]
        name = next((n for n in names if n in ZERO_MEANS), max(names, key=len))
        default = p.default if isinstance(p.default, (int, float)) else None  # click marks "none given" its own way
        integer = p.type is click.INT
        spec = implied_range(name, default) if default is not None else implied_range(name, 1) if integer else "[0, inf)"
        if spec:
            p.type = _interval(spec, integer=integer)
    for sub in getattr(cmd, "commands", {}).values():
        bound_numeric_options(sub)
    return cmd


# ---- devices ---------------------------------------------------------------------------------


def _device_callback(ctx, param, value):
    """``--device`` as given, once torch can use it here (else InvalidInputError saying what is available)."""
    from ..models.runner import check_device

    if value is not None:
        check_device(value, "--device")
    return value


def guard_device_options(cmd: click.Command) -> click.Command:
    """Every ``--device`` option of ``cmd`` (and sub-commands) is checked while parsing."""
    for p in cmd.params:
        if isinstance(p, click.Option) and "--device" in p.opts and p.callback is None:
            p.callback = _device_callback
    for sub in getattr(cmd, "commands", {}).values():
        guard_device_options(sub)
    return cmd


# ---- outputs left by a failed command ----------------------------------------------------------


def output_candidates(command: str, params: dict) -> list[Path]:
    """Directories a command may create: its ``--out`` or, without one, poslens-out/COMMAND."""
    out = params.get("out")
    if out:
        return [Path(out)]
    return [Path("poslens-out"), Path("poslens-out") / command]


def remove_new_outputs(before: dict[Path, bool]) -> None:
    """Delete the candidate directories that did not exist before a command failed."""
    import shutil

    for path, existed in sorted(before.items(), key=lambda kv: len(kv[0].parts), reverse=True):
        if not existed and path.exists():
            shutil.rmtree(path, ignore_errors=True)
