"""A sweep from start to finish: plan the grid, compute the missing cells, merge, flag, write.

>>> res = sweep(["tiny"], analyses=["helix"], out="poslens-out/sweep")      # doctest: +SKIP
>>> res["metrics"]["wpos_top_k_share"]["rows"][0]                           # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import InvalidInputError, PoslensError
from ..io import atomic_write_text
from ..options import listed
from ..results import INF_STRINGS, canonical
from . import changepoints as CP
from .cells import ANALYSES, options_for
from .grid import Revision, revisions
from .store import Store, code_version

SWEEP_FORMAT = "poslens-sweep/1"
SHARE_MIN_JUMP = 0.05  # the smallest change in a head's share of attention flagged as a jump or a spike


def _is_share(metric: str) -> bool:
    """``best_*_score`` metrics are a head's share of attention, on an absolute 0..1 scale."""
    return metric.startswith("best_") and metric.endswith("_score")


def _source_stamp(rev: Revision) -> dict:
    """What tells two versions of a local checkpoint apart before reading it: its weight files' sizes and mtimes."""
    p = Path(rev.spec)
    if not p.is_dir():
        return {}
    return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(p.iterdir())
            if f.is_file() and f.name in ("model.safetensors", "pytorch_model.bin", "config.json")}


def plan(models, *, steps=None, every=None, log=None, analyses=("helix",), overrides=None) -> list[dict]:
    """The grid as tasks: one per (model, revision, analysis), each with its store key and material."""
    models, analyses = listed(models), listed(analyses)
    if not models:
        raise InvalidInputError("no model given; pass --model (e.g. -m tiny, -m alias --log 12)")
    opts = {a: options_for(a, (overrides or {}).get(a)) for a in analyses}
    for a in overrides or {}:
        if a not in analyses:
            raise InvalidInputError(f"--set names analysis '{a}', which this sweep does not run ({', '.join(analyses)})")
    tasks = []
    for m in models:
        for rev in revisions(m, steps=steps, every=every, log=log):
            for a in analyses:
                material = {"model": rev.model, "revision": rev.revision, "spec_source": _source_stamp(rev),
                            "analysis": a, "options": opts[a], "code": {k: v for k, v in code_version(
                                ANALYSES[a].modules).items() if k != "files"}}
                tasks.append({"key": Store.key(material), "material": material, "spec": rev.spec, "analysis": a,
                              "options": opts[a], "revision": rev.to_dict()})
    return tasks


def compute(tasks: list[dict], store: Store, *, executor="local", jobs=None, address="auto", progress=True,
            log_path: Path | None = None) -> dict:
    """Compute every task whose verified entry is not in ``store``; returns counts and failures."""
    from tqdm.auto import tqdm

    from .executors import run_cells

    seen: dict[str, dict] = {}
    for t in tasks:
        seen.setdefault(t["key"], t)
    todo = [t for t in seen.values() if store.get(t["key"], t["material"]) is None]
    cached = len(seen) - len(todo)
    failed: dict[str, str] = {}
    bar = tqdm(total=len(seen), initial=cached, desc="sweep cells", unit="cell", disable=not progress)
    log_lines = []

    def done(task, body, info):
        if body["status"] == "failed":
            failed[task["key"]] = body["reason"]
        else:
            store.put(task["key"], task["material"], body)
        log_lines.append(json.dumps({"key": task["key"], "spec": task["spec"], "analysis": task["analysis"],
                                     "status": body["status"], **info}))
        bar.update(1)

    try:
        run_cells(todo, done, executor=executor, jobs=jobs, address=address,
                  cpus=ANALYSES[todo[0]["analysis"]].cpus if todo else 1.0,
                  memory_mb=max((ANALYSES[t["analysis"]].memory_mb for t in todo), default=1024))
    finally:
        bar.close()
        if log_path is not None and log_lines:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a", encoding="utf-8") as fh:  # provenance only; not part of any result
                fh.write("\n".join(log_lines) + "\n")
    return {"cells": len(seen), "cached": cached, "computed": len(todo) - len(failed), "failed": failed}


def _identical(rows_by_rev: list[tuple[dict, dict]]) -> dict[str, str]:
    """revision -> the earlier revision of the same model whose every shared tensor is bit-identical."""
    out = {}
    for j, (rj, fj) in enumerate(rows_by_rev):
        for ri, fi in rows_by_rev[:j]:
            shared = set(fi) & set(fj)
            if shared and all(fi[n] == fj[n] for n in shared):
                out[rj["revision"]] = ri["revision"]
                break
    return out


def merge(tasks: list[dict], store: Store, cp_params: dict | None = None, failed: dict | None = None) -> dict:
    """One table per metric across every model and revision, with jumps, spikes and identical revisions flagged."""
    failed = failed or {}
    models = list(dict.fromkeys(t["revision"]["model"] for t in tasks))
    analyses = list(dict.fromkeys(t["analysis"] for t in tasks))
    by = {}
    for t in tasks:
        body = store.get(t["key"], t["material"])
        if body is None:
            body = {"status": "failed", "reason": failed.get(t["key"], "not computed"), "fingerprints": {}}
        by[(t["revision"]["model"], t["revision"]["revision"], t["analysis"])] = (t, body)
    revs = {m: list(dict.fromkeys(t["revision"]["revision"] for t in tasks if t["revision"]["model"] == m))
            for m in models}
    rev_info = {(t["revision"]["model"], t["revision"]["revision"]): t["revision"] for t in tasks}
    # integrity: fingerprints of everything any cell read from each revision
    flags: dict[str, dict[str, list[str]]] = {m: {} for m in models}
    fingerprints: dict[str, dict[str, dict]] = {m: {} for m in models}
    for m in models:
        for r in revs[m]:
            fp = fingerprints[m][r] = {}
            for a in analyses:
                if (m, r, a) in by:
                    fp.update(by[(m, r, a)][1].get("fingerprints", {}))
        for r, earlier in _identical([(rev_info[(m, r)], fingerprints[m][r]) for r in revs[m]]).items():
            flags[m].setdefault(r, []).append(f"tensors bit-identical to {earlier}")
    metrics: dict[str, dict] = {}
    cells = [{**rev_info[(m, r)], "analysis": a, "status": body["status"], "reason": body.get("reason"),
              "metrics": body.get("metrics"), "options": t["options"]}
             for (m, r, a), (t, body) in sorted(by.items(), key=lambda kv: (
                 models.index(kv[0][0]), revs[kv[0][0]].index(kv[0][1]), analyses.index(kv[0][2])))]
    for a in analyses:
        for name, meaning in ANALYSES[a].metrics.items():
            entry = metrics[name] = {"analysis": a, "meaning": meaning, "rows": [], "jumps": {}}
            for m in models:
                series = []
                for r in revs[m]:
                    if (m, r, a) not in by:
                        continue
                    body = by[(m, r, a)][1]
                    ri = rev_info[(m, r)]
                    got = body.get("metrics") or {}
                    val = got.get(name) if body["status"] == "ok" else None
                    val = INF_STRINGS.get(val, val) if isinstance(val, str) else val  # as the store spells +-inf
                    head = got.get(name.replace("_score", "_head")) if name.endswith("_score") else None
                    row = {"model": m, "revision": r, "step": ri["step"], "tokens": ri["tokens"], "value": val,
                           "status": body["status"], "note": body.get("reason") or "", "flags": []}
                    if head is not None:
                        row["head"] = head
                    series.append(row)
                values = [row["value"] for row in series]
                # a head's share of attention moving by less than SHARE_MIN_JUMP is no mechanism forming,
                # however flat the rest of its series is
                params = {**(cp_params or {}), "min_abs": SHARE_MIN_JUMP} if _is_share(name) else cp_params
                jumps = CP.jumps(values, params)
                for j in jumps["jumps"]:
                    series[j["index"]]["flags"].append(f"jump {j['size']:+.4g} (z {j['z']:.1f})"
                                                       + (", open: still changing as the history ends" if j.get("open") else ""))
                for s in CP.spikes(values, params):
                    series[s["index"]]["flags"].append(f"spike {s['deviation']:+.4g} off both neighbours")
                    flags[m].setdefault(series[s["index"]]["revision"], []).append(f"{name} spike")
                for row in series:
                    row["flags"] += [f for f in flags[m].get(row["revision"], []) if "identical" in f]
                entry["rows"] += series
                entry["jumps"][m] = [{**j, "revision": series[j["index"]]["revision"],
                                      "step": series[j["index"]]["step"]} for j in jumps["jumps"]]
    return {
        "format": SWEEP_FORMAT,
        "models": models,
        "revisions": {m: [rev_info[(m, r)] for r in revs[m]] for m in models},
        "analyses": {a: {"options": next(t["options"] for t in tasks if t["analysis"] == a),
                         "metrics": ANALYSES[a].metrics} for a in analyses},
        "change_points": {**CP.describe(cp_params), "share_min_jump": f"a best_*_score (a head's share of attention) "
                          f"must move by at least {SHARE_MIN_JUMP} to count as a jump or a spike"},
        "metrics": metrics,
        "flags": flags,
        "fingerprints": fingerprints,
        "cells": cells,
    }


def _csv(rows: list[dict]) -> str:
    cols = ["model", "revision", "step", "tokens", "value", "head", "status", "flags", "note"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "value": "" if r["value"] is None else repr(float(r["value"])), "flags": "; ".join(r["flags"]),
                    "step": "" if r["step"] is None else r["step"], "tokens": "" if r["tokens"] is None else r["tokens"]})
    return buf.getvalue()


def _json(obj) -> str:
    return json.dumps(json.loads(canonical(obj)), indent=1, sort_keys=True) + "\n"


def write_tables(merged: dict, out: Path) -> list[Path]:
    """``OUT/sweep.json`` and, per metric, ``OUT/tables/METRIC.csv`` and ``.json`` (deterministic bytes)."""
    tables, paths = out / "tables", []
    for name, m in merged["metrics"].items():
        atomic_write_text(tables / f"{name}.csv", _csv(m["rows"]))
        table = {"metric": name, **m, "change_points": merged["change_points"]}
        atomic_write_text(tables / f"{name}.json", _json(table))
        paths += [tables / f"{name}.csv", tables / f"{name}.json"]
    atomic_write_text(out / "sweep.json", _json(merged))
    return [out / "sweep.json"] + paths


def sweep(models, *, out, steps=None, every=None, log=None, analyses=("helix",), overrides=None, executor="local",
          jobs=None, address="auto", progress=True, cp_params=None, page=True) -> dict:
    """Plan, compute (resuming from ``OUT/store``), merge and write a sweep; returns the merged result
    plus ``run`` (what was cached, computed, failed) and ``files``."""
    out = Path(out)
    if executor == "ray":
        from .executors import check_ray_address

        check_ray_address(address)
    tasks = plan(models, steps=steps, every=every, log=log, analyses=analyses, overrides=overrides)
    if executor == "ray":
        from .executors import connect_ray

        connect_ray(address)  # a wrong address fails now, before any work
    store = Store(out / "store")
    run = compute(tasks, store, executor=executor, jobs=jobs, address=address, progress=progress,
                  log_path=out / "runs.jsonl")
    failed = run["failed"]
    if run["cells"] and len(failed) == run["cells"] and not any(r.startswith("unexpected ") for r in failed.values()):
        # one mistake in every cell (a model the hub cannot give here, an option out of range): say it in one line
        # and leave nothing to tabulate, nor an earlier run's tables overwritten by empty ones
        first = next(iter(failed.values()))
        raise PoslensError(f"every cell failed ({len(failed)} of {run['cells']}); the first: "
                           f"{first.partition(': ')[2] or first}")
    merged = merge(tasks, store, cp_params, failed)
    files = write_tables(merged, out)
    if page:
        from .page import write_page

        files += write_page(merged, out)
    return {**merged, "run": run, "files": [str(f) for f in files]}
