"""The analyses, one package each; :func:`load_result` reads back a result any of them saved."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ..results import Result


def load_result(source: str | Path | dict[str, Any]) -> Result:
    """A saved result (its JSON file, e.g. ``result.json`` or ``Result.save``'s, or the dict) as
    the typed result its ``kind`` names, so its figures can be drawn again without recomputing.
    NaN (written ``null``) and +-inf (written ``"Infinity"`` / ``"-Infinity"``) come back as floats.

    >>> r = load_result("poslens-out/helix/result.json")     # doctest: +SKIP
    >>> from poslens.viz.helix import figures                 # doctest: +SKIP
    >>> figures(r, "figures/")                                # doctest: +SKIP
    """
    from ..results import Result  # here: an analysis's light options module imports this package too

    d = source
    if not isinstance(source, (dict, str, os.PathLike)):
        raise InvalidInputError(f"load_result reads a result's JSON file (its path) or its dict; got {type(source).__name__}")
    if not isinstance(source, dict):
        try:
            d = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"cannot read a result from {source}: {exc}") from None
    if isinstance(d, dict) and "kind" not in d and (what := _stored_entry(d)):
        raise InvalidInputError(f"{'this' if isinstance(source, dict) else source} is {what}")
    if isinstance(d, dict) and d.get("kind") == "verdicts":  # the report's own table, no analysis's result
        raise InvalidInputError("the report's verdict table is plain JSON, not an analysis's result: read it as it "
                                "is (report.json's \"verdicts\": one row per mechanism, with its verdict and reason)")
    for m in pkgutil.walk_packages(__path__, f"{__name__}."):  # every kind's class, defined where its analysis is
        importlib.import_module(m.name)
    return Result.from_dict(d)


def _stored_entry(d: dict) -> str | None:
    """What a report cache entry or sweep store cell is and how to read it (neither is a result); else None."""
    body = d.get("body") if isinstance(d.get("body"), dict) else {}
    fmt, m = str(d.get("format", "")), d.get("material") if isinstance(d.get("material"), dict) else {}
    if fmt == "poslens-report-cache":
        return (f"a report cache entry (stage '{body.get('stage')}'), not a result: its result is the entry's "
                "[\"body\"][\"result\"], which load_result reads, as it reads report.json's "
                "[\"stages\"][STAGE][\"result\"]")
    if fmt.startswith("poslens-sweep-cell/"):
        return (f"a sweep store cell ({m.get('model')} {m.get('revision')}, {m.get('analysis')}): a few metrics, "
                "not an analysis's result; read it as plain JSON (its [\"body\"][\"metrics\"]), or every cell's "
                "in the sweep's tables/METRIC.csv and sweep.json")
    return None
