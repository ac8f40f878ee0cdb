"""Which checkpoints a sweep visits: a model's revisions, chosen explicitly, every N-th, or log-spaced.

A model's revisions are its published training checkpoints (the Stanford CRFM runs: 609
each, step known), the checkpoint folders of a local run (``DIR/checkpoint-N``,
``DIR/step-N`` or any sub-folder with a ``config.json``, also under ``DIR/checkpoints`` or
``DIR/history``; step and tokens seen from its ``training_log.json`` or the folder name),
a hub repository's branches named by step (Pythia's ``step1000``), or, for any other
model, just itself.

>>> [r.revision for r in revisions("alias", steps=["0", "1000"])]
['checkpoint-0', 'checkpoint-1000']
>>> [r.step for r in revisions("alias", log=5)]
[0, 10, 350, 11700, 400000]
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError, UnknownModelError, suggest

# Tokens per optimizer step where a run's batch is known: the Stanford CRFM (Mistral)
# GPT-2 runs train with 512 sequences of 1,024 tokens per step.
TOKENS_PER_STEP = {"stanford-gpt2-small": 512 * 1024, "stanford-gpt2-medium": 512 * 1024,
                   "pythia": 1024 * 2048}
# Hub runs by repository prefix: Pythia trains every size with 1,024 sequences of 2,048 tokens
# per step (Biderman et al. 2023, "Pythia: A Suite for Analyzing Large Language Models").
HUB_TOKENS_PER_STEP = {"EleutherAI/pythia-": 1024 * 2048}
_STEP_NAME = re.compile(r"(?:checkpoint|step|ckpt|global_step)?[-_]?(\d+)$")
_HISTORY_DIRS = ("checkpoints", "history")


@dataclass(frozen=True)
class Revision:
    """One checkpoint of a sweep: ``model`` as given, its ``revision`` name, what opens it
    (``spec``: ``NAME@REV`` or a directory), and its training ``step``/``tokens`` where known."""

    model: str
    revision: str
    spec: str
    step: int | None = None
    tokens: int | None = None

    def to_dict(self) -> dict:
        return {"model": self.model, "revision": self.revision, "spec": self.spec, "step": self.step,
                "tokens": self.tokens}


def _step_from_name(name: str) -> int | None:
    m = _STEP_NAME.search(name)
    return int(m.group(1)) if m else None


def _local_revision(model: str, d: Path) -> Revision:
    try:
        data = json.loads((d / "training_log.json").read_text())
    except (OSError, ValueError):  # no log, or not one poslens wrote: the folder name may still say the step
        data = {}
    data = data if isinstance(data, dict) else {}
    step, tokens = (data[k] if isinstance(data.get(k), int) else None for k in ("step", "tokens_seen"))
    return Revision(model=model, revision=d.name, spec=str(d), step=_step_from_name(d.name) if step is None else step,
                    tokens=tokens)


def _local_history(model: str, root: Path) -> list[Revision]:
    """The checkpoint folders under ``root`` (or ``root/checkpoints``, ``root/history``), in step order.

    A ``poslens train --snapshots`` history is read through its manifest (step and tokens
    seen of each snapshot).
    """
    from ..train.history import history_dir, read_manifest

    hist = history_dir(root)  # root may be a `poslens train` run's --out: its history is under model/
    if (hist / "manifest.json").is_file():
        snaps = sorted(read_manifest(root)["snapshots"], key=lambda x: x["step"])
        return [Revision(model=model, revision=x["dir"], spec=str(hist / x["dir"]), step=int(x["step"]),
                         tokens=x.get("tokens_seen")) for x in snaps]
    found: list[Path] = []
    for base in (root, *(root / h for h in _HISTORY_DIRS)):
        if base.is_dir():
            # hidden folders are a killed export's half-swapped model (poslens.io.replace_dir), not a revision
            found += [p for p in sorted(base.iterdir())
                      if p.is_dir() and not p.name.startswith(".") and (p / "config.json").is_file()]
    revs = [_local_revision(model, p) for p in found]
    if all(r.step is not None for r in revs):
        revs.sort(key=lambda r: (r.step, r.revision))
    return revs


def available(model: str) -> list[Revision]:
    """Every revision of ``model`` a sweep can visit, in training order.

    >>> len(available("alias"))
    609
    """
    from ..models.registry import resolve

    name, _, rev = str(model).partition("@")
    source = resolve(name)
    info = source.info
    if rev:
        return [_explicit_one(name, rev)]
    if info is not None and info.checkpoints:
        per = TOKENS_PER_STEP.get(info.family)
        # the branch names are the registry's (checkpoint-STEP for Stanford, stepSTEP for Pythia)
        return [Revision(model=info.name, revision=resolve(f"{info.name}@{s}").revision or str(s),
                         spec=f"{info.name}@{s}", step=s, tokens=None if per is None else s * per)
                for s in info.checkpoints]
    if source.local_dir is not None:
        return _local_history(model, Path(source.local_dir)) or [_local_revision(model, Path(source.local_dir))]
    hub = _hub_branches(source.repo_id) if source.repo_id else None
    return hub or [Revision(model=model, revision="main", spec=model)]


def _hub_branches(repo_id: str) -> list[Revision] | None:
    """A hub repository's training checkpoints: its branches named by step (Pythia's
    ``step1000``, ``checkpoint-1000``), in step order; None when it has none or the hub
    cannot be asked (offline)."""
    from ..models.registry import hub_reachable

    if not hub_reachable():
        return None
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        refs = HfApi().list_repo_refs(repo_id)
    except (HfHubHTTPError, OSError, ValueError):
        return None
    per = next((n for prefix, n in HUB_TOKENS_PER_STEP.items() if repo_id.startswith(prefix)), None)
    revs = []
    for b in refs.branches:
        step = _step_from_name(b.name)
        if b.name != "main" and step is not None:
            revs.append(Revision(model=repo_id, revision=b.name, spec=f"{repo_id}@{b.name}", step=step,
                                 tokens=None if per is None else step * per))
    return sorted(revs, key=lambda r: (r.step, r.revision)) or None


def _explicit_one(name: str, rev: str) -> Revision:
    return Revision(model=name, revision=rev, spec=f"{name}@{rev}", step=_step_from_name(rev))


def _nearest(want: str, revs: list[Revision]) -> str:
    """' (nearest: ...)' naming the revisions just before and after ``want`` by step, else by spelling."""
    step = _step_from_name(want)
    steps = [r for r in revs if r.step is not None]
    if step is not None and steps:
        below = [r for r in steps if r.step <= step]
        above = [r for r in steps if r.step > step]
        near = ([max(below, key=lambda r: r.step)] if below else []) + ([min(above, key=lambda r: r.step)] if above else [])
        return " (nearest: " + ", ".join(r.revision for r in near) + ")"
    return suggest(want, [r.revision for r in revs])


def choose(revs: list[Revision], *, steps=None, every: int | None = None, log: int | None = None) -> list[Revision]:
    """The revisions asked for: explicit (names or steps), every N-th, or ``log`` log-spaced
    in step (always the first and last); all of them when nothing is asked.

    >>> rs = [Revision("m", f"step-{s}", f"d/step-{s}", s) for s in (0, 1, 2, 4, 8, 16, 32, 64)]
    >>> [r.step for r in choose(rs, log=4)]
    [0, 1, 8, 64]
    >>> [r.step for r in choose(rs, every=3)]
    [0, 4, 32, 64]
    """
    given = sum(x is not None for x in (steps, every, log))
    if given > 1:
        raise InvalidInputError("choose revisions one way: --revisions, --every or --log, not several")
    if not revs:
        return []
    if steps is not None:
        by_name = {r.revision: r for r in revs}
        by_step = {r.step: r for r in reversed(revs) if r.step is not None}  # the first revision of each step
        out = []
        for s in steps:
            s = str(s).strip()
            r = by_name.get(s) or (by_step.get(int(s)) if s.isdigit() else None)
            if r is None:
                raise UnknownModelError(f"{revs[0].model} has no revision '{s}'{_nearest(s, revs)}")
            out.append(r)
        return list(dict.fromkeys(out))
    if every is not None:
        if every < 1:
            raise InvalidInputError(f"--every must be a positive number of checkpoints (got {every})")
        out = revs[::every]
        return out if out[-1] is revs[-1] else out + [revs[-1]]
    if log is not None:
        if log < 2:
            raise InvalidInputError(f"--log needs at least 2 checkpoints (got {log})")
        if any(r.step is None for r in revs):
            raise InvalidInputError(f"--log spaces checkpoints by training step, and some revisions of {revs[0].model} "
                                    "have none; use --every or --revisions")
        lo = min((r.step for r in revs if r.step > 0), default=1)
        hi = max(r.step for r in revs)
        targets = [revs[0].step] + [lo * (hi / lo) ** (i / (log - 2)) for i in range(log - 1)] if log > 2 and hi > lo \
            else [revs[0].step, hi]
        out = dict.fromkeys(min(revs, key=lambda r: (abs(math.log1p(r.step) - math.log1p(t)), r.step)) for t in targets)
        return sorted(out, key=lambda r: r.step)
    return list(revs)


def revisions(model: str, *, steps=None, every: int | None = None, log: int | None = None) -> list[Revision]:
    """:func:`available` revisions of ``model`` filtered by :func:`choose`.

    Steps of a run with published checkpoints are checked against the registry, which
    names the nearest published step for one that does not exist.
    """
    from ..models.registry import resolve

    name = str(model).partition("@")[0]
    info = resolve(name).info
    if steps is not None and info is not None and info.checkpoints:
        for s in steps:
            s = str(s).strip()
            resolve(f"{info.name}@{s.removeprefix('checkpoint-')}")  # raises naming the nearest step
    if steps is not None and info is None and resolve(name).local_dir is None:
        # a hub id: checked against its branches when the hub lists them, else the hub answers for each
        listed = _hub_branches(name)
        if listed is None:
            return [_explicit_one(name, str(s).strip()) for s in steps]
        return choose(listed, steps=steps)
    return choose(available(model), steps=steps, every=every, log=log)
