"""What one sweep cell measures: emergence metrics of one checkpoint, from the existing analyses.

Each analysis here calls poslens's own analyses and keeps a few scalars of their results:

- ``helix``: W_pos's top-k variance share, the helix fit's turns, period and R², and the
  share of W_pos's variance at periods of at most 4 positions
  (:func:`poslens.analyses.helix.helix_with_fit`). Reads ``wpe.weight`` only.
- ``heads``: the best previous-token, duplicate-token and induction scores over every head
  on repeated random tokens, and which head holds each
  (:func:`poslens.analyses.heads.pattern_stats`, pooled as ``duplicate_heads`` pools them).
- ``icl``: the in-context loss gain on repeated random tokens: the mean next-token loss
  on the first copy minus that on the second (Olsson et al. 2022, "In-context learning
  and induction heads"; their score contrasts late and early tokens, here the copy
  structure makes the contrast exact), and its order-dependent part, the induction gain
  (:mod:`poslens.analyses.incontext`: the second copy shuffled as control).
- ``sinks``: the attention-sink share on random tokens (Gu et al. 2024, "When Attention
  Sink Emerges in Language Models") (:mod:`poslens.analyses.sinks`).

A checkpoint without what an analysis needs (no ``wte``: no token inputs) gives a
not-applicable cell with the reason. Cells run single-threaded, so a cell's numbers are
the same bit for bit whichever executor (and whichever machine of one build) ran it.

>>> body, info = compute_cell({"spec": "tiny", "analysis": "helix", "options": {"k": 3}})   # doctest: +SKIP
>>> body["metrics"]["wpos_top_k_share"]                                                     # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidInputError, MissingTensorError, PoslensError, suggest
from ..options import implied_range, within


@dataclass(frozen=True)
class Analysis:
    """A sweep analysis: its metrics (name -> what it means), default options, the modules its
    code runs (for the code version), the tensor it cannot do without, and the function."""

    name: str
    metrics: dict[str, str]
    defaults: dict
    modules: tuple[str, ...]
    fn: Callable
    needs: tuple[str, ...] = ()
    needs_why: str = ""
    cpus: float = 1.0
    memory_mb: int = 1024


def _helix(w, opts: dict) -> dict:
    from ..analyses.helix import helix_with_fit

    k = int(opts["k"])
    r, _ = helix_with_fit(w, tokens=False, sinusoidal=False, truncations=False, cosine_size=8, n_traces=0,
                          n_components=max(k, 3))
    h = r.helix
    return {
        "wpos_top_k_share": r.cumulative[k - 1],
        "helix_turns": h.turns if h else None,
        "helix_period": h.period if h else None,
        "helix_r2": h.r2 if h else None,
        "short_period_share": r.short_period.share if r.short_period else None,
    }


def _bos(w):
    """The config's BOS id (sequences start with it, as the model saw in training), or None."""
    b = w.cfg.bos_token_id
    return b if b is not None and 0 <= b < w.cfg.d_vocab else None


def _repeated(w, opts: dict):
    from ..data.sequences import repeated_tokens

    bos = _bos(w)
    seq_len = min(int(opts["seq_len"]), w.cfg.n_ctx)
    return repeated_tokens(int(opts["n_seq"]), seq_len, w.cfg.d_vocab, seed=int(opts["seed"]), bos=bos), bos


def _heads(w, opts: dict) -> dict:
    from ..analyses.heads import pattern_stats
    from ..models.runner import Runner

    tokens, bos = _repeated(w, opts)
    runner = Runner(w, dtype="float32")
    layers = list(range(w.cfg.n_layers))
    st = pattern_stats(runner, tokens, layers, batch_size=int(opts["batch_size"]),
                       ignore=tuple(x for x in (bos,) if x is not None))
    out = {}
    for metric, grid in (("prev_token", st.prev()), ("duplicate", st.pooled()), ("induction", st.induction())):
        i, h = divmod(int(grid.argmax()), grid.shape[1])
        out[f"best_{metric}_score"] = float(grid[i, h])
        out[f"best_{metric}_head"] = f"{layers[i]}.{h}"
    return out


def _icl(w, opts: dict) -> dict:
    from ..analyses.incontext import copy_gain
    from ..models.runner import Runner

    tokens, bos = _repeated(w, opts)
    g = copy_gain(Runner(w, dtype="float32"), tokens, bos is not None, seed=int(opts["seed"]),
                  batch_size=int(opts["batch_size"]))
    return {"loss_first_copy": g["first"], "loss_second_copy": g["second"], "icl_gain": g["gain"],
            "loss_second_copy_shuffled": g["second_shuffled"], "icl_induction_gain": g["induction_gain"]}


def _sinks(w, opts: dict) -> dict:
    from ..analyses.sinks import Options, attention_sinks
    from ..models.runner import Runner

    r = attention_sinks(Runner(w, dtype="float32"), Options(
        inputs="random_tokens", n_seq=int(opts["n_seq"]), seq_len=int(opts["seq_len"]), seed=int(opts["seed"]),
        epsilon=float(opts["epsilon"])))
    run = r.run("random_tokens")
    return {"sink_share": run.sink_share, "sink_head_share": run.head_share}


_TOKENS = dict(n_seq=16, seq_len=128, seed=0, batch_size=8)
_TENSORS = {"pos_embed.W_pos": "learned positional embedding W_pos", "embed.W_E": "token embedding W_E"}


def _lacks(w, name: str) -> str:
    """A missing tensor as a reason names it: by role, then as this family stores it (a rotary model stores
    no W_pos, so GPT-2's wpe.weight would mislead)."""
    try:
        stored = w.stored_name(name)
    except KeyError:
        stored = None
    return f"{_TENSORS.get(name, name)}{f' ({stored})' if stored else ''}"

ANALYSES: dict[str, Analysis] = {
    "helix": Analysis(
        "helix",
        {"wpos_top_k_share": "share of W_pos's variance in its top-k principal components (k: option k)",
         "helix_turns": "turns of the helix fitted to W_pos's top-3 coordinates",
         "helix_period": "positions per turn of that helix",
         "helix_r2": "R² of the helix fit",
         "short_period_share": "share of W_pos's variance at periods of at most 4 positions"},
        {"k": 3}, ("poslens.sweep.cells", "poslens.analyses.helix"), _helix,
        needs=("pos_embed.W_pos",),
        needs_why="the geometry of learned positions (rotary and fixed-position models have none)"),
    "heads": Analysis(
        "heads",
        {"best_prev_token_score": "the highest previous-token attention of any head",
         "best_duplicate_score": "the highest attention to earlier copies of the current token",
         "best_induction_score": "the highest attention to the token after an earlier copy"},
        dict(_TOKENS), ("poslens.sweep.cells", "poslens.analyses.heads"), _heads,
        needs=("embed.W_E",), needs_why="token inputs"),
    "icl": Analysis(
        "icl",
        {"icl_gain": "in-context loss gain: loss on the first copy minus loss on the second (nats)",
         "loss_first_copy": "mean next-token loss on the first copy of the random tokens (nats)",
         "loss_second_copy": "mean next-token loss on the second copy (nats)",
         "icl_induction_gain": "of the gain, the part that needs the earlier copy's order: loss on the second copy "
                               "shuffled minus loss on it in order (nats)",
         "loss_second_copy_shuffled": "mean next-token loss on the second copy in a random order (nats)"},
        dict(_TOKENS), ("poslens.sweep.cells", "poslens.analyses.incontext", "poslens.models.runner"), _icl,
        needs=("embed.W_E",), needs_why="token inputs and the unembedding"),
    "sinks": Analysis(
        "sinks",
        {"sink_share": "share of (sequence, layer, head) putting more than epsilon of its attention on position 0",
         "sink_head_share": "share of heads whose mean attention on position 0 exceeds epsilon"},
        dict(n_seq=16, seq_len=64, seed=0, epsilon=0.3), ("poslens.sweep.cells", "poslens.analyses.sinks"), _sinks,
        needs=("embed.W_E",), needs_why="token inputs"),
}

DEFAULT_ANALYSES = ("helix", "heads", "icl")


def parse_analyses(spec: str | None) -> list[str]:
    names = [a.strip() for a in (",".join(DEFAULT_ANALYSES) if spec is None else spec).split(",") if a.strip()]
    if not names:
        raise InvalidInputError(f"--analyses names no analysis; give some of {', '.join(ANALYSES)} (or all)")
    if names == ["all"]:
        return list(ANALYSES)
    for a in names:
        if a not in ANALYSES:
            raise InvalidInputError(f"unknown analysis '{a}'{suggest(a, ANALYSES)}; known: {', '.join(ANALYSES)}")
    return list(dict.fromkeys(names))


def options_for(analysis: str, overrides: dict | None) -> dict:
    """The analysis's defaults with ``overrides`` applied, each checked and cast to the default's type."""
    if analysis not in ANALYSES:
        raise InvalidInputError(f"unknown analysis '{analysis}'{suggest(str(analysis), ANALYSES)}; "
                                f"known: {', '.join(ANALYSES)}")
    a = ANALYSES[analysis]
    out = dict(a.defaults)
    for k, v in (overrides or {}).items():
        if k not in out:
            raise InvalidInputError(f"analysis '{analysis}' has no option '{k}'{suggest(k, out)}; "
                                    f"its options: {', '.join(out) or 'none'}")
        try:
            out[k] = type(out[k])(v)
        except (TypeError, ValueError):
            kind = {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(type(out[k]).__name__,
                                                                                            type(out[k]).__name__)
            raise InvalidInputError(f"{analysis}.{k}={v!r} is not {kind}") from None
    # here, not in the cells: an option out of range failed every cell of its analysis while the others
    # were computed and written, where a mistake in the command must stop it before any work
    # (the ranges every option takes, options.implied_range, but for the two a cell needs more of)
    declared = {"seq_len": "[2, inf)" if analysis == "sinks" else "[3, inf)", "epsilon": "(0, 1)"}
    for k, v in out.items():
        spec = declared.get(k) or implied_range(k, a.defaults[k])
        if spec and not within(v, spec):
            raise InvalidInputError(f"{analysis}.{k} must lie in {spec} (got {v})")
    return out


def compute_cell(task: dict) -> tuple[dict, dict]:
    """Run one cell: ``task`` has ``spec`` (what opens the checkpoint), ``analysis``, ``options``.

    Returns ``(body, info)``: ``body`` (stored, deterministic) has ``status`` ok /
    not_applicable, ``metrics`` or ``reason``, and ``fingerprints`` (sha256 of every tensor
    read); ``info`` (not stored) has the worker's pid, seconds and bytes fetched remotely.
    A :class:`PoslensError` becomes a ``failed`` body, which the driver does not store.
    """
    import torch

    from ..models import remote
    from ..models.registry import open_checkpoint
    from ..models.weights import Weights
    from ..progress import quiet

    t0, fetched0 = time.perf_counter(), remote.BYTES_FETCHED
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    a = ANALYSES[task["analysis"]]
    ckpt = None
    try:
        ckpt = open_checkpoint(task["spec"])
        ckpt.fingerprint = True
        w = Weights.from_checkpoint(ckpt)
        missing = [n for n in a.needs if not w.has(n)]
        if missing:
            body = {"status": "not_applicable",
                    "reason": f"the checkpoint has no {_lacks(w, missing[0])}, which {a.name} needs "
                              f"for {a.needs_why}"}
        else:
            with torch.no_grad(), quiet():  # the sweep shows one bar, over its cells
                metrics = a.fn(w, task["options"])
            body = {"status": "ok", "metrics": metrics}
    except MissingTensorError as exc:
        body = {"status": "not_applicable", "reason": str(exc)}
    except PoslensError as exc:
        body = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:  # noqa: BLE001 - one broken checkpoint must not end a 600-cell sweep
        body = {"status": "failed", "reason": f"unexpected {type(exc).__name__}: {exc}"}
    finally:
        torch.set_num_threads(threads)
    body["fingerprints"] = dict(sorted((ckpt.fingerprints if ckpt is not None else {}).items()))
    info = {"pid": os.getpid(), "seconds": time.perf_counter() - t0,
            "bytes_fetched": remote.BYTES_FETCHED - fetched0}
    return body, info
