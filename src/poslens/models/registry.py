"""Model names → checkpoint sources.

A name is one of: a registered short name or alias (``gpt2``, ``gpt2-small``, ``alias``,
``stanford-gpt2-small-a``, ``pythia-160m``, ``tiny``), a local directory holding
``config.json`` plus weights, or any Hugging Face hub id of a supported architecture
(GPT-2, GPT-Neo, OPT, GPT-NeoX/Pythia, Llama/Mistral/Qwen2). A revision is given as
``NAME@REV``; for a model with a published training history a bare step number names its
checkpoint (``checkpoint-STEP`` for the Stanford CRFM runs, ``stepSTEP`` for Pythia).

>>> resolve("gpt2-small").repo_id
'openai-community/gpt2'
>>> resolve("battlestar@1000").revision
'checkpoint-1000'
>>> resolve("pythia-70m-deduped@512").revision
'step512'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError, OfflineError, UnknownModelError, suggest

EMBEDDED_DIR = Path(__file__).parent / "embedded"

# Steps at which the Stanford CRFM runs published checkpoints (branches checkpoint-STEP).
STANFORD_CHECKPOINTS: tuple[int, ...] = tuple(
    list(range(0, 100, 10)) + list(range(100, 2000, 50)) + list(range(2000, 20000, 100))
    + list(range(20000, 400000 + 1, 1000))
)

# Pythia's 154 checkpoints per model (branches stepSTEP): log-spaced to 512, then every 1000.
PYTHIA_CHECKPOINTS: tuple[int, ...] = (0,) + tuple(2 ** i for i in range(10)) + tuple(range(1000, 143000 + 1, 1000))
PYTHIA_SIZES = ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    repo_id: str | None  # None for embedded models
    aliases: tuple[str, ...]
    family: str
    description: str
    checkpoints: tuple[int, ...] = ()
    revision_format: str = "checkpoint-{}"  # the branch of training step N

    @property
    def embedded_dir(self) -> Path | None:
        return EMBEDDED_DIR / self.name if self.repo_id is None else None


def _stanford(name: str, size: str, letter: str, seed: int) -> ModelInfo:
    return ModelInfo(
        name=name,
        repo_id=f"stanford-crfm/{name}-gpt2-{size}-x{seed}",
        aliases=(f"stanford-gpt2-{size}-{letter}",),
        family=f"stanford-gpt2-{size}",
        description=f"Stanford CRFM Mistral GPT-2 {size}, seed {seed}, 609 training checkpoints",
        checkpoints=STANFORD_CHECKPOINTS,
    )


def _pythia(size: str, deduped: bool) -> ModelInfo:
    name = f"pythia-{size}" + ("-deduped" if deduped else "")
    data = "the deduplicated Pile" if deduped else "the Pile"
    return ModelInfo(name, f"EleutherAI/{name}", (), "pythia" + ("-deduped" if deduped else ""),
                     f"EleutherAI Pythia {size} (GPT-NeoX, partial rotary) on {data}",
                     PYTHIA_CHECKPOINTS, "step{}")


def _hub(name: str, repo: str, family: str, description: str) -> ModelInfo:
    return ModelInfo(name, repo, (), family, description)


MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("tiny", None, ("poslens-tiny",), "poslens",
              "poslens's positional organism: a 3-layer GPT-2 on English whose W_pos learned a smooth arc "
              "(embedded, offline, with its training history)"),
    ModelInfo("tiny-attn", None, ("poslens-tiny-attn",), "poslens",
              "poslens's circuit organism: a 2-layer attention-only GPT-2 with previous-token, duplicate-token and "
              "induction heads "
              "(embedded, offline, with its training history)"),
    ModelInfo("gpt2", "openai-community/gpt2", ("gpt2-small",), "gpt2", "OpenAI GPT-2 small, 124M"),
    ModelInfo("gpt2-medium", "openai-community/gpt2-medium", (), "gpt2", "OpenAI GPT-2 medium, 355M"),
    ModelInfo("gpt2-large", "openai-community/gpt2-large", (), "gpt2", "OpenAI GPT-2 large, 774M"),
    ModelInfo("gpt2-xl", "openai-community/gpt2-xl", (), "gpt2", "OpenAI GPT-2 XL, 1.5B"),
    ModelInfo("distilgpt2", "distilbert/distilgpt2", (), "gpt2", "DistilGPT2, 6 layers distilled from GPT-2 small"),
    _stanford("alias", "small", "a", 21),
    _stanford("battlestar", "small", "b", 49),
    _stanford("caprica", "small", "c", 81),
    _stanford("darkmatter", "small", "d", 343),
    _stanford("expanse", "small", "e", 777),
    _stanford("arwen", "medium", "a", 21),
    _stanford("beren", "medium", "b", 49),
    _stanford("celebrimbor", "medium", "c", 81),
    _stanford("durin", "medium", "d", 343),
    _stanford("eowyn", "medium", "e", 777),
    *(_pythia(size, deduped) for deduped in (False, True) for size in PYTHIA_SIZES),
    _hub("gpt-neo-125m", "EleutherAI/gpt-neo-125m", "gpt-neo", "EleutherAI GPT-Neo 125M (learned positions, local attention)"),
    _hub("gpt-neo-1.3b", "EleutherAI/gpt-neo-1.3B", "gpt-neo", "EleutherAI GPT-Neo 1.3B"),
    _hub("gpt-neo-2.7b", "EleutherAI/gpt-neo-2.7B", "gpt-neo", "EleutherAI GPT-Neo 2.7B"),
    _hub("opt-125m", "facebook/opt-125m", "opt", "Meta OPT 125M (learned positions, offset 2)"),
    _hub("opt-350m", "facebook/opt-350m", "opt", "Meta OPT 350M (post-LayerNorm, project_in/out)"),
    _hub("opt-1.3b", "facebook/opt-1.3b", "opt", "Meta OPT 1.3B"),
    _hub("smollm2-135m", "HuggingFaceTB/SmolLM2-135M", "llama-style", "SmolLM2 135M (Llama-style, grouped-query)"),
    _hub("smollm2-360m", "HuggingFaceTB/SmolLM2-360M", "llama-style", "SmolLM2 360M (Llama-style, grouped-query)"),
    _hub("qwen2-0.5b", "Qwen/Qwen2-0.5B", "llama-style", "Qwen2 0.5B (QKV biases, grouped-query)"),
    _hub("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B", "llama-style", "Qwen2.5 0.5B (QKV biases, grouped-query)"),
    _hub("mistral-7b", "mistralai/Mistral-7B-v0.1", "llama-style", "Mistral 7B v0.1 (sliding window 4096)"),
)

# The organisms shipped inside the package; `poslens report` with no --model covers them all.
ORGANISMS: tuple[str, ...] = tuple(m.name for m in MODELS if m.repo_id is None)

# Families a user can ask for at once (--family). "gpt2" is the nine models the helix seed plots.
FAMILIES: dict[str, tuple[str, ...]] = {
    "gpt2": ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "alias", "battlestar", "caprica", "darkmatter", "expanse"),
    "openai": ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"),
    "stanford-small": ("alias", "battlestar", "caprica", "darkmatter", "expanse"),
    "stanford-medium": ("arwen", "beren", "celebrimbor", "durin", "eowyn"),
    "pythia": tuple(f"pythia-{s}" for s in PYTHIA_SIZES),
    "pythia-deduped": tuple(f"pythia-{s}-deduped" for s in PYTHIA_SIZES),
    "gpt-neo": ("gpt-neo-125m", "gpt-neo-1.3b", "gpt-neo-2.7b"),
    "opt": ("opt-125m", "opt-350m", "opt-1.3b"),
    "llama-style": ("smollm2-135m", "smollm2-360m", "qwen2-0.5b", "qwen2.5-0.5b", "mistral-7b"),
}

_BY_NAME: dict[str, ModelInfo] = {}
for _m in MODELS:
    for _n in (_m.name, *_m.aliases):
        _BY_NAME[_n.lower()] = _m
    if _m.repo_id:
        _BY_NAME[_m.repo_id.lower()] = _m
        _BY_NAME[_m.repo_id.split("/", 1)[1].lower()] = _m


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files come from: exactly one of ``local_dir`` or ``repo_id``."""

    label: str
    local_dir: Path | None = None
    repo_id: str | None = None
    revision: str | None = None
    info: ModelInfo | None = None


def _split_revision(spec: str) -> tuple[str, str | None]:
    # "@" only separates a revision if what follows is not part of a path.
    if "@" in spec and not Path(spec).exists():
        name, rev = spec.rsplit("@", 1)
        return name, rev or None
    return spec, None


def resolve(spec: str, revision: str | None = None) -> ModelSource:
    """Resolve a model name, alias, hub id or directory to a :class:`ModelSource`."""
    from .weights import null_spec

    base, seed = null_spec(spec)
    if seed is not None:
        raise InvalidInputError(f"'{spec}' is a null model ({base} with random weights), which the analyses and the "
                                f"report take; this reads a checkpoint as stored: give '{base}'")
    spec = str(spec).strip()
    if not spec:
        raise UnknownModelError("empty model name; run `poslens models` to list the known ones")
    name, rev = _split_revision(spec)
    rev = revision or rev
    path = Path(name).expanduser()
    if path.is_dir():
        if rev is not None:
            raise UnknownModelError(
                f"'{spec}': a local directory has no revisions; point --model at the checkpoint directory itself"
            )
        return ModelSource(label=str(path), local_dir=path, revision=rev)
    info = _BY_NAME.get(name.lower())
    if info is not None:
        if info.repo_id is None:
            d = info.embedded_dir
            if not (d / "config.json").is_file():
                raise UnknownModelError(
                    f"the embedded model '{info.name}' is not installed in {d}; reinstall poslens"
                )
            if rev is not None:
                return ModelSource(label=f"{info.name}@{rev}", local_dir=_snapshot(info, d, rev), info=info)
            return ModelSource(label=info.name, local_dir=d, info=info)
        if rev is not None and info.checkpoints:
            step = _step_of(rev, info)
            if step is not None:
                if step not in info.checkpoints:
                    near = min(info.checkpoints, key=lambda s: abs(s - step))
                    raise UnknownModelError(f"{info.name} has no checkpoint at step {step}; the nearest is {near}")
                rev = info.revision_format.format(step)
        label = info.name + (f"@{rev}" if rev else "")
        return ModelSource(label=label, repo_id=info.repo_id, revision=rev, info=info)
    if path.is_file():  # e.g. the model.safetensors or config.json inside a checkpoint
        raise UnknownModelError(f"'{name}' is a file, not a checkpoint directory; give the directory that holds "
                                "config.json and the weights" + (f" (here: {path.parent})" if
                                                                  (path.parent / "config.json").is_file() else ""))
    looks_like_path = name.startswith((".", "/", "~")) or os.sep in name and name.count("/") != 1
    if "/" in name and not looks_like_path:
        return ModelSource(label=name + (f"@{rev}" if rev else ""), repo_id=name, revision=rev)
    if looks_like_path:
        raise UnknownModelError(f"directory '{name}' does not exist; check the path")
    raise UnknownModelError(
        f"unknown model '{name}'{suggest(name.lower(), _BY_NAME)}; run `poslens models` for the list, "
        "or give a hub id (owner/name) or a checkpoint directory"
    )


def embedded_snapshots(info: ModelInfo) -> dict[int, str]:
    """An embedded model's training history: step -> its snapshot folder under ``history/`` ({} if it ships none)."""
    import json

    manifest = info.embedded_dir / "history" / "manifest.json"
    return {int(s["step"]): s["dir"] for s in json.loads(manifest.read_text())["snapshots"]} if manifest.is_file() else {}


def _snapshot(info: ModelInfo, d: Path, rev: str) -> Path:
    """The folder of an embedded model's training-history snapshot ``rev`` (a step: ``1449`` or ``step-1449``)."""
    snaps = embedded_snapshots(info)
    if not snaps:
        raise UnknownModelError(f"the embedded model '{info.name}' ships no training history; use --model {info.name}")
    digits = rev.removeprefix("step-").removeprefix("step")
    if not digits.isdigit():
        raise UnknownModelError(f"'{info.name}@{rev}': a revision of an embedded model is a training step, one of "
                                f"{', '.join(map(str, snaps))}")
    step = int(digits)
    if step not in snaps:
        near = min(snaps, key=lambda s: abs(s - step))
        raise UnknownModelError(f"{info.name} has no snapshot at step {step}; the nearest is {near} "
                                f"(steps: {', '.join(map(str, snaps))})")
    return d / "history" / snaps[step]


def _step_of(rev: str, info: ModelInfo) -> int | None:
    """The training step a revision names ("1000", "step1000", "checkpoint-1000"), or None for a branch/commit."""
    if rev.isdigit():
        return int(rev)
    head = info.revision_format.split("{}")[0]
    if rev.startswith(head) and rev[len(head):].isdigit():
        return int(rev[len(head):])
    return None


def family(name: str) -> tuple[str, ...]:
    if name not in FAMILIES:
        raise UnknownModelError(f"unknown family '{name}'{suggest(name, FAMILIES)}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def _offline_error(where: str, repo_id: str, revision: str | None = None, named: bool = True) -> OfflineError:
    """``named``: the spec was a known name; otherwise it may be a run folder mistyped (runs/mine), so say both."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    why = "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache" if offline else (
        "it is not in the Hugging Face cache and the hub cannot be reached"
    )
    if not named:
        why = f"there is no directory {repo_id} here; as a hub id, {why}"
    return OfflineError(
        f"cannot load {where}: {why}; on a machine with internet run `hf download {repo_id}"
        f"{f' --revision {revision}' if revision else ''}` "
        "(then copy ~/.cache/huggingface here), or pass --model a local checkpoint directory"
    )


_REACHABLE: dict[str, bool] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host answers a TCP connection (checked once per process).

    Without this, huggingface_hub retries an unreachable hub for most of a minute before
    falling back to the cache; with it, a machine without internet reads the cache at once.
    """
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    if host not in _REACHABLE:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            _REACHABLE[host] = True
        except OSError:
            _REACHABLE[host] = False
    return _REACHABLE[host]


def download(source: ModelSource, weights: bool = True) -> Path:
    """Fetch (or find in the HF cache) a hub model's config, tokenizer and, if ``weights``,
    its weights; return its snapshot folder.

    Weights are ``model.safetensors``, a sharded ``model.safetensors.index.json`` with its
    shards, or ``pytorch_model.bin``, whichever the repository has first. Honours
    ``HF_HUB_OFFLINE``: then only the cache is read, and a miss says how to fix it.
    """
    import json

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    assert source.repo_id is not None
    where = f"{source.repo_id}" + (f" (revision {source.revision})" if source.revision else "")
    missing_locally: list[str] = []
    local_only = not hub_reachable()

    def fetch(fn: str, required: bool) -> Path | None:
        try:
            return Path(hf_hub_download(source.repo_id, fn, revision=source.revision, local_files_only=local_only))
        except LocalEntryNotFoundError as exc:  # before EntryNotFoundError, which it subclasses
            if required:
                raise _offline_error(where, source.repo_id, source.revision, source.info is not None) from exc
            missing_locally.append(fn)
            return None
        except RevisionNotFoundError as exc:
            raise UnknownModelError(f"{where}: no such revision on the hub") from exc
        except EntryNotFoundError as exc:
            if required:
                raise UnknownModelError(f"{where} has no {fn} on the hub") from exc
            return None
        except RepositoryNotFoundError as exc:
            raise UnknownModelError(
                f"'{source.repo_id}' is not a model on the Hugging Face hub (or it is private)"
                + ("" if source.info else ", nor a directory here") + "; "
                "run `poslens models` for the known names"
            ) from exc

    folder = fetch("config.json", required=True).parent
    for fn in ("tokenizer.json", "vocab.json", "merges.txt"):
        fetch(fn, required=False)
    if not weights:
        return folder
    if fetch("model.safetensors", required=False) is None:
        index = fetch("model.safetensors.index.json", required=False)
        if index is not None:
            for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
                fetch(shard, required=True)
        elif fetch("pytorch_model.bin", required=False) is None:
            if missing_locally:
                raise _offline_error(where, source.repo_id, source.revision, source.info is not None)
            raise UnknownModelError(f"{where} has neither model.safetensors nor pytorch_model.bin")
    return folder


def _cached(source: ModelSource, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(source.repo_id, filename, revision=source.revision), str)


def _remote_checkpoint(source: ModelSource):
    """A checkpoint whose tensors are range-read from the hub's model.safetensors, or None
    when reading that way is not possible (offline, cached already, no such file)."""
    from huggingface_hub import constants, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError

    from .checkpoint import WEIGHT_FILES, Checkpoint
    from .remote import cache_root

    if constants.HF_HUB_OFFLINE or os.environ.get("POSLENS_FULL_DOWNLOAD") or not hub_reachable():
        return None
    if any(_cached(source, f) for f in WEIGHT_FILES):
        return None
    folder = download(source, weights=False)
    url = hf_hub_url(source.repo_id, "model.safetensors", revision=source.revision)
    try:
        return Checkpoint.from_remote(folder, url, cache_root() / source.repo_id / folder.name / "model.safetensors",
                                      label=source.label, revision=source.revision)
    except EntryNotFoundError:  # sharded or .bin-only repositories are downloaded whole
        return None


def open_checkpoint(spec: str, revision: str | None = None):
    """Resolve ``spec`` and return a lazy :class:`~poslens.models.checkpoint.Checkpoint`, its
    tensors' stored shapes checked against its config.json (headers only).

    >>> ckpt = open_checkpoint("tiny")
    >>> ckpt.config.n_layers
    3
    """
    from .checkpoint import Checkpoint
    from .families import check_shapes
    source = resolve(spec, revision)
    if source.local_dir is not None:
        ckpt = Checkpoint.from_dir(source.local_dir, label=source.label, revision=source.revision)
    else:
        ckpt = _remote_checkpoint(source) or Checkpoint.from_dir(download(source), label=source.label,
                                                                 revision=source.revision)
    check_shapes(ckpt)  # before any work: a mismatch is one clear error, not a matmul failure later
    return ckpt
