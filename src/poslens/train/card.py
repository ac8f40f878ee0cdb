"""A model card (``MODEL.md``) for a checkpoint trained by ``poslens train``, measured with poslens.

Every figure on the card comes from a computation anyone can rerun: the commands that
reproduce the weights are rendered from the training log's stages, the losses from its
history, the positional structure from :func:`poslens.analyses.helix.helix` and
:func:`poslens.analyses.heads.duplicate_heads`, the samples from greedy decoding.

    python -m poslens.train.card runs/mine/model          # writes runs/mine/model/MODEL.md

>>> m = measure("runs/mine/model")                        # doctest: +SKIP
>>> print(render(m))                                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, PoslensError
from ..io import atomic_write_text
from ..results import to_jsonable
from .corpus import NEAR

SAMPLE_PROMPTS = ("And God said unto Moses,", "ROMEO. O", "In the beginning")
# Options that are never written on a `poslens train` command line.
_NOT_OPTIONS = ("corpus", "out", "device")


def _command(options: dict, out: str, stop_at: int | None) -> str:
    from .config import TrainConfig

    default = TrainConfig().to_dict()
    parts = ["poslens train"] + [f"-c $CORPORA/{Path(c).name}" for c in options["corpus"]] + [f"--out {out}"]
    for k, v in options.items():
        if k in _NOT_OPTIONS or k not in default or (v == default[k] and k != "max_steps"):
            continue
        flag = k.replace("_", "-")
        parts.append((f"--{flag}" if v else f"--no-{flag}") if isinstance(v, bool) else f"--{flag} {v}")
    if stop_at is not None:
        parts.append(f"--stop-at {stop_at}")
    return " ".join(parts)


def commands(log: dict, out: str = "runs/tiny") -> list[str]:
    """The ``poslens train`` commands, one per stage, that reproduce the run (up to float nondeterminism)."""
    stages = log.get("stages") or [{"from_step": 0, "options": log["config"]}]
    ends = [st["from_step"] for st in stages[1:]] + [None]  # each stage stops where the next starts
    return [f"CORPORA={Path(stages[0]['options']['corpus'][0]).parent}   # where the text files are",
            *(_command(st["options"], out, end) for st, end in zip(stages, ends))]


def measure(model_dir: str | Path, n_seq: int = 32, n_new: int = 40) -> dict[str, Any]:
    """Everything the card reports, measured on the exported checkpoint in ``model_dir``."""
    from ..analyses.heads import duplicate_heads
    from ..analyses.helix import helix
    from ..analyses.geometry.logit_lens import greedy_generate
    from ..models import Runner, load_weights
    from ..models.tokenizer import Tokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "training_log.json").is_file():
        raise InvalidInputError(f"{model_dir} has no training_log.json: a card describes a `poslens train` run's "
                                "model/ folder")
    log = json.loads((model_dir / "training_log.json").read_text())
    w = load_weights(str(model_dir))
    tok = Tokenizer.for_checkpoint(w.source)
    hx = helix(w)
    P = min(256, w.cfg.n_ctx)
    dup = duplicate_heads(w, n_seq=n_seq, seq_len=P, positional=False, tokenizer=tok)
    runner = Runner(w)
    samples = []
    for p in SAMPLE_PROMPTS:
        ids = tok.encode(p, prepend_bos=True)
        gen = greedy_generate(runner, ids, max(0, min(n_new, w.cfg.n_ctx - len(ids))), top_k=1, tokenizer=tok)
        samples.append({"prompt": p, "continuation": gen.text})
    vals = [h for h in log["history"] if "val_loss" in h]
    from . import measures as M
    from .history import history_dir, snapshot_dirs

    gain = M.incontext_gain(w, n_seq=n_seq, seq_len=P)
    hist = None
    if (history_dir(model_dir) / "manifest.json").is_file():
        hist = M.history_scores(model_dir, n_seq=min(n_seq, 16), progress=True)
        dirs = [d for _, d in snapshot_dirs(model_dir)]
        if len(dirs) >= 2:
            from ..analyses.helix import helix_sweep

            sw = helix_sweep([str(d) for d in dirs])
            hist["wpe_overlap_final"] = {r.step: r.overlap_final for r in sw.table}
    heads = dup.heads
    by_prev = sorted(heads, key=lambda k: -heads[k].prev_token_score)
    by_ind = sorted(heads, key=lambda k: -heads[k].induction_score)
    return {
        "model_dir": str(model_dir), "config": w.cfg.to_dict(), "n_params": w.cfg.n_params, "log": log,
        "commands": commands(log), "val": vals,
        "helix": {"variance_explained": hx.variance_explained, "components_for_90": hx.components_for_90,
                  **to_jsonable({"fit": hx.helix, "ode": hx.ode, "ode_smoothed": hx.ode_smoothed})},
        "spectrum": {"periods": [c.period for c in hx.periods.by_column[:3]],
                     "short_period": hx.short_period.period, "short_share": hx.short_period.share},
        "heads": {k: {"dup": heads[k].score_repeated, "prev": heads[k].prev_token_score,
                      "ind": heads[k].induction_score} for k in heads},
        "top_dup": dup.ranking[:3], "top_prev": by_prev[:3], "top_ind": by_ind[:3],
        # mean over the second copy's queries of 1 / (number of keys a causal query sees)
        "uniform_induction": float(np.mean(1.0 / (np.arange(P // 2, P) + 1))),
        "dup_threshold": dup.options["threshold"],
        "duplicate_heads": dup.duplicate_heads, "samples": samples, "incontext": gain, "history": hist,
    }


def _f(x, nd=3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _grid(heads: dict, n_layers: int, n_heads: int) -> list[str]:
    """Layers x heads, each cell 'duplicate / previous / induction'."""
    rows = ["| layer \\ head | " + " | ".join(str(h) for h in range(n_heads)) + " |",
            "| --- | " + " | ".join("---" for _ in range(n_heads)) + " |"]
    for l in range(n_layers):
        cells = [" / ".join(f"{heads[f'{l}.{h}'][s]:.2f}" for s in ("dup", "prev", "ind"))
                 if f"{l}.{h}" in heads else "" for h in range(n_heads)]
        rows.append(f"| {l} | " + " | ".join(cells) + " |")
    return ["Each cell: duplicate-token score / previous-token score / induction score.", "", *rows]


_KIND_TEXT = {
    "repeat": "a span repeated to fill the window (only an induction circuit predicts it)",
    "lag2": "lag-2 copies (a fresh token is repeated two places later with probability 0.7, never a copy of a "
            "copy; only a previous-token head predicts it)",
    "lag2perm": "lag-2 copies through a fixed permutation of the vocabulary (a fresh token's image is placed two "
                "places later with probability 0.7; only a previous-token head predicts it, and its output is no copy)",
    "dup": "fresh tokens, some copied once from earlier in the window and each copy followed by a marker (only a "
           "duplicate-token head predicts the marker)",
    "dupdist": "fresh tokens, some copied once from earlier in the window and each copy followed by one of two markers, "
               f"for a copy at most {NEAR} tokens after its first occurrence or a farther one (only a head that finds the "
               "copy and reads where it is predicts the marker)",
    "reverse": "fresh tokens with stretches recited backwards (only a duplicate-token head reading a previous-token "
               "head predicts them)",
}


def _precision(config: dict) -> str:
    """How the run computed (the trainer's default was bfloat16 autocast before the option existed)."""
    dtype = config.get("dtype", "bfloat16")
    return "bfloat16 autocast" if dtype == "bfloat16" else f"{dtype}, no autocast"


def _kinds_text(options: dict) -> str:
    kinds = [k for k in str(options.get("synthetic_kinds", "repeat,lag2")).split(",") if k]
    share = f"1/{len(kinds)}" if len(kinds) > 1 else "all"
    parts: list[str] = []
    for k in dict.fromkeys(kinds):  # a kind listed twice is a larger share, said once
        n = kinds.count(k)
        parts.append(f"{share if n == 1 else f'{n}/{len(kinds)}'} {_KIND_TEXT[k]}")
    return "; ".join(parts)


def _held(spec: str) -> str:
    parts = [x.strip() for x in str(spec).split(",") if x.strip()]
    layers = [x for x in parts if x != "unembed"]
    what = ([f"layer(s) {','.join(layers)}"] if layers else []) + (
        ["the token (un)embedding and final LayerNorm"] if "unembed" in parts else [])
    return " and ".join(what)


def _stage_text(a: int, end: int, o: dict) -> str:
    """What steps ``a``..``end`` of one stage trained on, and what they held fixed or drew afresh."""
    syn = min(max(o.get("synthetic_steps", 0), a), end)  # synthetic-only until this step
    alpha, length = o.get("synthetic_vocab", 0), o.get("synthetic_len") or o.get("n_ctx")
    parts: list[str] = []
    if syn > a:
        parts.append(f"Steps {a:,}–{syn:,}: no text, only synthetic windows of random tokens"
                     + (f" drawn from the text's {alpha:,} most frequent tokens" if alpha else "")
                     + (f", {length} tokens long" if length and length != o.get("n_ctx") else "")
                     + f": {_kinds_text(o)}.")
    if end > syn:
        frac = o.get("synthetic_frac", 0.0)
        parts.append(f"Steps {syn:,}–{end:,}: text"
                     + (f", with a {frac:.0%} share of every batch synthetic so those circuits kept a gradient: "
                        f"{_kinds_text(o)}." if frac else " only."))
    if o.get("freeze_layers"):
        held = _held(o["freeze_layers"])
        parts.append(f"{held[0].upper()}{held[1:]} held fixed.")
    if o.get("reinit_heads"):
        parts.append(f"At step {a:,} head(s) {o['reinit_heads']} were drawn afresh.")
    scale, until = o.get("wpe_lr_scale", 1.0), o.get("wpe_freeze_steps", 0)
    if scale == 0:
        parts.append("W_pos was not updated.")
    elif until > a or scale != 1.0:
        parts.append((f"W_pos was not updated before step {until:,}; " if until > a else "")
                     + f"W_pos learned at {scale:g} times the others' learning rate.")
    return " ".join(parts)


def _synthetic_lines(log: dict) -> list[str]:
    """The curriculum, one line per stage (a run without synthetic rows or held parts gets none)."""
    stages = log.get("stages") or [{"from_step": 0, "options": log["config"]}]
    ends = [st["from_step"] for st in stages[1:]] + [log["step"]]
    texts = [_stage_text(st["from_step"], end, st["options"]) for st, end in zip(stages, ends)
             if end > st["from_step"]]
    if all(t.endswith(" text only.") and t.count("Steps") == 1 for t in texts):
        return []
    closing = ("Heads found below may have been formed by that curriculum rather than by English; the card measures "
               "what is there now.")
    if len(texts) == 1:
        return [f"{texts[0]} {closing}", ""]
    return ["Stage by stage:", "", *(f"- {t}" for t in texts), "", closing, ""]


def _history_lines(hist: dict | None) -> list[str]:
    """The training-history section: every score at every snapshot, and when each mechanism formed."""
    from . import measures as M

    if not hist:
        return []
    rows = hist["rows"]
    lines = ["## When each mechanism formed (the shipped training history)", "",
             f"{len(rows)} float16 snapshots, log-spaced in steps from the initialisation (step 0) to the end, ship in "
             "`history/` beside the weights (`history/manifest.json` lists them); every score below is measured on "
             f"them with the same analyses ({hist['n_seq']} repeated random-token sequences per snapshot), so "
             "`poslens helix --sweep -m DIR` and the card's command recompute it.", ""]
    lines += M.as_table(rows)
    lines += ["", "A mechanism counts as formed at the first snapshot from which it stays at its target (previous-token "
              "≥ 0.8, duplicate-token ≥ 0.3, induction ≥ 0.3, in-context gain ≥ 0.3 nats, W_pos top-3 share ≥ 0.6, "
              "short-period share ≤ 5%); the largest rise between two snapshots is where it changed most.", ""]
    for k, f in hist["formation"].items():
        j = f["largest_jump"]
        when = f"formed at step {f['formed_at']:,}" if f["formed_at"] is not None else "never reaches its target"
        jump = (f"; largest change {j['change']:+.3f} between steps {j['from_step']:,} and {j['to_step']:,}"
                if j else "")
        lines.append(f"- {M.LABELS[k]}: {when}{jump}.")
    lines += _wpe_and_prev(hist)
    ov = hist.get("wpe_overlap_final")
    if ov:
        lines += ["", "Overlap of each snapshot's W_pos top-3 subspace with the final one (mean squared cosine of the "
                  "principal angles; 1 = the same subspace): " + ", ".join(
                      f"{s:,}: {v:.2f}" for s, v in ov.items() if v is not None) + "."]
    return lines + [""]


def _about(name: str) -> str:
    from ..models.registry import MODELS

    info = next((i for i in MODELS if i.name == name), None)
    trained = ("trained by poslens's own trainer on public-domain English (King James Bible, World English Bible, "
               "Shakespeare)")
    if info is None or info.repo_id is not None:
        return f"A small GPT-2 {trained}."
    what = info.description.split(" (")[0]
    return (f"`{name}` is {what}, {trained}. It ships inside the package with the history of its training, so "
            "poslens works offline and its analyses have a trained model, and how it was formed, to look at.")


def _wpe_and_prev(hist: dict) -> list[str]:
    """Whether W_pos took its shape before, with or without the previous-token head (from the history)."""
    rows = hist["rows"]
    f = hist["formation"]
    at = f["wpe_top3"]["formed_at"]
    if at is None:
        return ["", "W_pos never reaches a top-3 share of 0.6 in this history, so when it took shape is not defined here."]
    prev_then = next(r["prev"] for r in rows if r["step"] == at)
    prev_at = f["prev"]["formed_at"]
    short_at = f["wpe_short"]["formed_at"]
    when = (f"the previous-token head had not formed yet (it forms at step {prev_at:,})" if prev_at and prev_at > at else
            f"the previous-token head had formed already (at step {prev_at:,})" if prev_at is not None else
            "no previous-token head forms in this history")
    return ["", f"W_pos and the previous-token head: W_pos reaches a top-3 share of 0.6 at step {at:,}"
            + (f" and a short-period share ≤ 5% at step {short_at:,}" if short_at is not None else
               ", but its short-period share never falls to 5%")
            + f"; the strongest previous-token score at that step is {prev_then:.3f}: {when}."]


def render(m: dict, name: str = "tiny") -> str:
    """The card as Markdown; ``name`` is the model's registered name (the title, the rerun commands)."""
    c, log = m["config"], m["log"]
    last = m["val"][-1] if m["val"] else {}
    hx = m["helix"]
    top3 = sum(hx["variance_explained"][:3])
    fit = hx.get("fit") or {}
    lines = [
        f"# poslens-{name} (`{name}`)",
        "",
        _about(name),
        "",
        "## How it was made",
        "",
        f"GPT-2 architecture exactly: learned absolute positions, pre-LayerNorm, {c['act_fn']}, tied unembedding. "
        + ("Attention-only: every MLP was held at zero throughout training (its weights ship as zeros). "
           if log["config"].get("attn_only") else "")
        + (f"Attention and MLP matrices initialised at std {log['config']['init_std']} (GPT-2: 0.02). "
           if log["config"].get("init_std", 0.02) != 0.02 else "")
        + f"{c['n_layers']} layers, {c['n_heads']} heads of {c['d_head']}, d_model {c['d_model']}, d_mlp {c['d_mlp']}, "
        f"n_ctx {c['n_ctx']}, tokenizer: {log['tokenizer']}; "
        f"{m['n_params']:,} parameters. Reproduce it (each stage resumes the last; `--stop-at` ends a stage):",
        "",
        "```bash",
        *commands(log, f"runs/{name}"),
        "```",
        "",
        f"Tokens seen: {log['tokens_seen']:,} ({log['step']:,} steps of {log['config']['batch_size']} x "
        f"{log['config']['n_ctx']}); training corpus {log['train_tokens']:,} tokens, held out {log['val_tokens']:,} "
        f"(the last {log['config']['val_frac']:.0%} of each file). Wall time: {log['wall_seconds'] / 3600:.2f} h on "
        f"a shared 2-core CPU ({_precision(log['config'])}).",
        "",
        *_synthetic_lines(log),
        "## Is it a language model?",
        "",
        f"Held-out cross-entropy **{_f(last.get('val_loss'))} nats/token** at step {last.get('step')}, against "
        f"the unigram entropy of the held-out text, {_f(log['unigram_entropy_val'])}, and the unigram model's "
        f"cross-entropy, {_f(log['unigram_cross_entropy_val'])}. Validation loss over training: "
        + ", ".join(f"{v['step']}: {v['val_loss']:.3f}" for v in m["val"]) + ".",
        "",
        "Greedy samples (no sampling, no cherry-picking: the first prompts tried):",
        "",
        *(f"- `{s['prompt']}` → {json.dumps(s['continuation'])}" for s in m["samples"]),
        "",
        "## What positional structure it learned (measured with poslens)",
        "",
        f"- W_pos (positions 1..{c['n_ctx'] - 1}, centred): the top 3 principal components hold "
        f"**{top3:.1%}** of its variance ({', '.join(f'{v:.3f}' for v in hx['variance_explained'][:3])}); "
        f"{hx['components_for_90']} components reach 90%. (GPT-2 small: 91% in 3.)",
        f"- Helix fit to the top-3 coordinates: period {_f(fit.get('period'), 1)} positions, {_f(fit.get('turns'), 2)} "
        f"turns over the context, R² {_f(fit.get('r2'))}"
        + (" — less than one turn: a curved arc, not (yet) a helix." if (fit.get("turns") or 0) < 1 else "."),
        f"- Linear ODE f′ ≈ A f + c on the top components: R² {_f((hx.get('ode') or {}).get('r2'))} with "
        "central-difference derivatives"
        + (f", {_f(hx['ode_smoothed'].get('r2'))} with Savitzky–Golay ones (what is left once position-to-position "
           "jitter is smoothed out)" if hx.get("ode_smoothed") else "") + ".",
        *(["- Dominant period of the top components along the position axis: "
           + ", ".join(f"{p:.1f}" for p in m["spectrum"]["periods"]) + " positions; "
           f"{m['spectrum']['short_share']:.1%} of W_pos's variance lies at periods of at most "
           f"{m['spectrum']['short_period']:g} positions (what separates neighbours; a smooth helix has almost none)."]
          if m["spectrum"]["short_share"] is not None else []),
        f"- Heads on repeated random tokens ({c['n_ctx']} tokens, a random half then the same half again): "
        "duplicate-token score = attention to the earlier copy of the current token; previous-token score = "
        "attention to the position before; induction score = attention to the token after the earlier copy "
        f"(uniform attention over the earlier positions would give about {m['uniform_induction']:.3f}).",
        "  - strongest duplicate-token heads: " + ", ".join(f"{k} ({m['heads'][k]['dup']:.3f})" for k in m["top_dup"])
        + (f"; {len(m['duplicate_heads'])} at or above {m['dup_threshold']}" if m["duplicate_heads"]
           else f"; none at or above {m['dup_threshold']}"),
        "  - strongest previous-token heads: " + ", ".join(f"{k} ({m['heads'][k]['prev']:.3f})" for k in m["top_prev"]),
        "  - strongest induction heads: " + ", ".join(f"{k} ({m['heads'][k]['ind']:.3f})" for k in m["top_ind"]),
        f"- In-context learning on the same kind of sequences: next-token loss **{m['incontext']['first']:.3f}** nats on "
        f"the first copy and **{m['incontext']['second']:.3f}** on the second, a gain of **{m['incontext']['gain']:.3f}** "
        f"nats (uniform guessing: {m['incontext']['uniform']:.3f}). With the second copy shuffled the loss is "
        f"**{_f(m['incontext'].get('second_shuffled'))}**, **{_f(m['incontext'].get('induction_gain'))}** nats above the "
        "unshuffled second copy's: what the earlier copy's order is worth (induction). A head that only favours "
        "tokens seen before gains on the shuffled copy as much as on the unshuffled one.",
        "",
        *_grid(m["heads"], c["n_layers"], c["n_heads"]),
        "",
        *_history_lines(m.get("history")),
        f"Rerun: `poslens helix -m {name}`, `poslens dup-heads -m {name}`, `poslens sweep -m {name}`, "
        f"`python -m poslens.train.card DIR --name {name}`.",
        "",
    ]
    return "\n".join(lines)


def write_card(model_dir: str | Path, extra: str = "", name: str = "tiny") -> Path:
    """Measure ``model_dir`` and write ``MODEL.md`` beside its weights; returns the path."""
    path = Path(model_dir) / "MODEL.md"
    atomic_write_text(path, render(measure(model_dir), name) + (("\n" + extra.strip() + "\n") if extra.strip() else ""))
    return path


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m poslens.train.card", description="Write MODEL.md for a trained model.")
    ap.add_argument("model_dir")
    ap.add_argument("--notes", default=None, help="A Markdown file appended to the card (observations, caveats).")
    ap.add_argument("--name", default="tiny", help="The model's registered name (the card's title and commands).")
    args = ap.parse_args(argv)
    extra = Path(args.notes).read_text() if args.notes else ""
    try:
        print(write_card(args.model_dir, extra, args.name))
    except PoslensError as exc:
        ap.error(str(exc))  # one line and status 2, as poslens's own commands


if __name__ == "__main__":
    main(sys.argv[1:])
