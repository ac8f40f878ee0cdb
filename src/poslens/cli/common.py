"""Options shared by every command, named the same everywhere, and output helpers."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InvalidInputError

DEFAULT_MODEL = "tiny"


def model_option(multiple: bool = False):
    help_ = "Model: a name from `poslens models`, a hub id, or a checkpoint directory; NAME@REV for a revision."
    if multiple:
        return click.option("--model", "-m", "model", multiple=True, help=help_ + " Repeat for several.")
    return click.option("--model", "-m", "model", default=DEFAULT_MODEL, show_default=True, help=help_)


out_option = click.option(
    "--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Directory for result.json and figures (created; default: poslens-out/COMMAND).",
)
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
    d = Path(out) if out is not None else Path("poslens-out") / command
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create output directory {d} ({exc.strerror}); choose another --out") from exc
    probe = d / ".poslens-write-test"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise InvalidInputError(f"output directory {d} is not writable ({exc.strerror}); choose another --out") from exc
    return d


def emit(result, out: Path, as_json: bool, summary: str | None = None, figures: list[Path] | None = None) -> None:
    """Write result.json into ``out`` and print either the JSON or a short summary."""
    path = result.save(out / "result.json")
    if as_json:
        click.echo(result.to_json())
        return
    if summary:
        click.echo(summary)
    click.echo(f"wrote {path}")
    for f in figures or []:
        click.echo(f"wrote {f}")


def parse_heads(spec: str | None) -> list[tuple[int, int]] | None:
    """'0.1,0.5,0.10' -> [(0, 1), (0, 5), (0, 10)]."""
    if not spec:
        return None
    out = []
    for part in spec.split(","):
        try:
            l, h = part.strip().split(".")
            out.append((int(l), int(h)))
        except ValueError:
            raise InvalidInputError(f"head '{part}' is not LAYER.HEAD (e.g. 0.5)") from None
    return out


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


def dumps(obj) -> str:
    return json.dumps(obj, indent=2)
