"""The training loop: deterministic batches, resumable checkpoints, held-out loss.

Batches are a pure function of (seed, step), so a resumed run sees exactly the batches an
uninterrupted one would have. The whole state (model, optimiser, step, log) is written
atomically every ``ckpt_every`` steps to ``OUT/train_state.pt``; the exported model
(config.json, model.safetensors, tokenizer.json, training_log.json) goes to ``OUT/model``,
replaced as a whole folder so that it never holds files of two different steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import signal
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from ..errors import Interrupted, InvalidInputError
from ..io import atomic_torch_save, atomic_write_bytes, atomic_write_text, recover_dir, recover_dirs, replace_dir
from ..models.config import ModelConfig
from ..models.tokenizer import Tokenizer
from ..options import listed
from . import corpus as C
from . import history as H
from .config import TrainConfig
from .model import TrainableGPT2

STATE = "train_state.pt"
TOKENS = "tokens.npz"  # the tokenised corpus, reused on resume


def _lr(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def _prepare_data(cfg: TrainConfig, out: Path):
    texts = C.read_texts(cfg.corpus)
    tok_path = out / "tokenizer.json"
    if cfg.tokenizer == "gpt2":
        tok = Tokenizer.gpt2()
    elif tok_path.is_file():  # trained by an earlier start of this run; named as then, so the log and card read alike
        tok = Tokenizer(Tokenizer.from_file(tok_path)._tk, C.bpe_name(cfg.vocab_size))
    elif cfg.tokenizer == "bpe":
        tok = C.train_bpe(texts, cfg.vocab_size)
    else:
        raise InvalidInputError(f"unknown tokenizer '{cfg.tokenizer}'; use 'bpe' or 'gpt2'")
    # Tokenising the corpus takes minutes on a busy CPU; a resumed run reads the ids it saved.
    key = _data_key(cfg, tok)
    cache = out / TOKENS
    train_ids = val_ids = None
    if cache.is_file():
        try:
            with np.load(cache) as z:
                if str(z["key"]) == key:
                    train_ids, val_ids = z["train"], z["val"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            train_ids = val_ids = None  # a damaged cache is tokenised again (and rewritten), never trusted
    fresh = train_ids is None
    if fresh:
        train_ids, val_ids = C.tokenize_split(texts, tok, cfg.val_frac)
    C.check_size(train_ids, val_ids, cfg.n_ctx)
    if fresh:  # atomically: a Ctrl-C mid-write (before the loop holds it) must not leave a half file
        buf = io.BytesIO()
        np.savez(buf, key=np.array(key), train=train_ids, val=val_ids)
        atomic_write_bytes(cache, buf.getvalue())
    return tok, train_ids, val_ids


def _data_key(cfg: TrainConfig, tok: Tokenizer) -> str:
    """What the tokenised corpus depends on: the files' contents, the tokenizer and the held-out share."""
    import hashlib

    h = hashlib.sha256()
    for c in cfg.corpus:
        h.update(Path(c).read_bytes())
    h.update(tok._tk.to_str().encode())
    h.update(repr(cfg.val_frac).encode())
    return h.hexdigest()


def _stage_options(cfg: TrainConfig) -> dict:
    return {k: v for k, v in cfg.to_dict().items() if k not in ("out", "device")}


def check_options(cfg: TrainConfig) -> None:
    """Refuse impossible options before any data is read or anything is written."""
    # the command line's ranges, for a TrainConfig made in Python (0 failed deep: a modulo by zero, an empty batch)
    for k in ("vocab_size", "n_layers", "n_heads", "d_model", "batch_size", "max_steps", "eval_every", "eval_batches",
              "ckpt_every"):
        if not getattr(cfg, k) >= 1:
            raise InvalidInputError(f"{k}={getattr(cfg, k)} must be at least 1")
    for k in ("lr", "min_lr", "weight_decay", "warmup_steps", "wpe_init_scale"):
        if not getattr(cfg, k) >= 0:
            raise InvalidInputError(f"{k}={getattr(cfg, k)} cannot be negative")
    for k in ("val_frac", "repeat_frac", "random_repeat_frac"):
        if not 0 <= getattr(cfg, k) <= 1:
            raise InvalidInputError(f"{k}={getattr(cfg, k)} is a share; give 0..1")
    if cfg.n_ctx < 2:
        raise InvalidInputError("n_ctx must be at least 2")
    if cfg.n_ctx > 65536:
        raise InvalidInputError(f"n_ctx={cfg.n_ctx} is larger than poslens's trainer supports (65536)")
    if not 0 <= cfg.synthetic_steps <= cfg.max_steps:
        raise InvalidInputError(f"synthetic_steps={cfg.synthetic_steps} must be between 0 and max_steps={cfg.max_steps}")
    if not 0 <= cfg.synthetic_frac <= 1:
        raise InvalidInputError(f"synthetic_frac={cfg.synthetic_frac} is a share of each batch; give 0..1")
    if cfg.synthetic_len and not 8 <= cfg.synthetic_len <= cfg.n_ctx:
        raise InvalidInputError(f"synthetic_len={cfg.synthetic_len} must be between 8 and n_ctx={cfg.n_ctx} (0: n_ctx)")
    if cfg.min_lr > cfg.lr:
        raise InvalidInputError(f"min_lr={cfg.min_lr} is above lr={cfg.lr}: the rate decays from lr to min_lr; "
                                "give min_lr <= lr")
    if not cfg.init_std > 0:
        raise InvalidInputError(f"init_std={cfg.init_std} must be positive (GPT-2's is 0.02)")
    if cfg.synthetic_vocab and cfg.synthetic_vocab < 16:
        raise InvalidInputError(f"synthetic_vocab={cfg.synthetic_vocab} is too small an alphabet; give at least 16 "
                                "(0: the whole vocabulary)")
    bad = [k for k in _kinds(cfg) if k not in C.SYNTHETIC_KINDS]
    if bad or not _kinds(cfg):
        raise InvalidInputError(f"synthetic_kinds={cfg.synthetic_kinds!r}: give a comma-separated list of "
                                f"{', '.join(C.SYNTHETIC_KINDS)}")
    if cfg.wpe_lr_scale < 0 or cfg.wpe_freeze_steps < 0 or cfg.snapshots < 0:
        raise InvalidInputError("wpe_lr_scale, wpe_freeze_steps and snapshots cannot be negative")
    _reinit(cfg)  # raises on a malformed or out-of-range head
    if any(not 0 <= l < cfg.n_layers for l in _frozen(cfg)):
        raise InvalidInputError(f"freeze_layers={cfg.freeze_layers!r}: layers are 0..{cfg.n_layers - 1}")
    if cfg.d_model % cfg.n_heads:
        raise InvalidInputError(f"d_model={cfg.d_model} is not divisible by n_heads={cfg.n_heads}")


def model_config(cfg: TrainConfig, tok: Tokenizer) -> ModelConfig:
    return ModelConfig(
        n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_model=cfg.d_model, n_ctx=cfg.n_ctx,
        d_vocab=tok.vocab_size, bos_token_id=tok.bos_token_id,
    )


@torch.no_grad()
def evaluate(model: TrainableGPT2, ids: np.ndarray, cfg: TrainConfig, device) -> float:
    rng = np.random.default_rng(12345)  # the same held-out windows at every evaluation
    losses = []
    model.eval()
    for _ in range(cfg.eval_batches):
        b = torch.from_numpy(C.batch(ids, rng, cfg.batch_size, cfg.n_ctx)).to(device)
        with _autocast(cfg):
            losses.append(float(model.loss(b)))
    model.train()
    return float(np.mean(losses))


def _autocast(cfg: TrainConfig):
    dev = "cuda" if cfg.device.startswith("cuda") else "cpu"
    if cfg.dtype == "float32":
        return torch.autocast(dev, enabled=False)
    return torch.autocast(dev, dtype=getattr(torch, cfg.dtype))


def export(model: TrainableGPT2, tok: Tokenizer, dest: Path, log: dict) -> None:
    """Write a checkpoint directory that poslens and transformers.GPT2LMHeadModel load.

    The folder is replaced whole: written file by file in place, a run killed mid-export
    would leave the config, weights and log of two different steps, loadable as one model.
    """
    from ..models.save import save_checkpoint

    with replace_dir(dest) as tmp:
        save_checkpoint(tmp, model.cfg, model.hf_state_dict(), tokenizer=tok)
        atomic_write_text(tmp / "training_log.json", json.dumps(log, indent=2))


def _frozen(cfg: TrainConfig) -> list[int]:
    try:
        return sorted({int(x) for x in str(cfg.freeze_layers).split(",") if x.strip() and x.strip() != "unembed"})
    except ValueError:
        raise InvalidInputError(f"freeze_layers={cfg.freeze_layers!r}: give comma-separated layer indices and/or "
                                "unembed, e.g. 1 or 0,2 or 1,unembed") from None


def _frozen_params(cfg: TrainConfig, model: TrainableGPT2) -> list[torch.nn.Parameter]:
    """The blocks named in ``freeze_layers``; ``unembed`` adds the token embedding (tied to the unembedding)
    and the final LayerNorm, so what the residual stream must say for a token's logit stays where it was."""
    params = [p for l in _frozen(cfg) for p in model.h[l].parameters()]
    if "unembed" in {x.strip() for x in str(cfg.freeze_layers).split(",")}:
        params += [*model.wte.parameters(), *model.ln_f.parameters()]
    return params


def _reinit(cfg: TrainConfig) -> list[tuple[int, int]]:
    try:
        heads = [tuple(int(v) for v in x.strip().split(".")) for x in str(cfg.reinit_heads).split(",") if x.strip()]
    except ValueError:
        heads = [()]
    if any(len(h) != 2 or not 0 <= h[0] < cfg.n_layers or not 0 <= h[1] < cfg.n_heads for h in heads):
        raise InvalidInputError(f"reinit_heads={cfg.reinit_heads!r}: give comma-separated layer.head pairs with layers "
                                f"0..{cfg.n_layers - 1} and heads 0..{cfg.n_heads - 1}, e.g. 0.1,0.3")
    return heads


def reinit_heads(model: TrainableGPT2, opt: torch.optim.Optimizer, heads: list[tuple[int, int]],
                 generator: torch.Generator) -> None:
    """Draw each head's query, key, value and output weights afresh (the model's init; biases zero)
    and clear their AdamW moments, so the old direction's momentum does not carry on."""
    d, dh, n_layers = model.cfg.d_model, model.cfg.d_head, model.cfg.n_layers
    with torch.no_grad():
        for layer, h in heads:
            attn = model.h[layer].attn
            cols = [slice(j * d + h * dh, j * d + (h + 1) * dh) for j in range(3)]  # Q, K, V thirds of c_attn
            rows = slice(h * dh, (h + 1) * dh)
            for c in cols:
                attn.c_attn.weight[:, c] = (torch.randn(d, dh, generator=generator) * model.init_std).to(attn.c_attn.weight)
                attn.c_attn.bias[c] = 0.0
            std_out = model.init_std / math.sqrt(2 * n_layers)
            attn.c_proj.weight[rows] = (torch.randn(dh, d, generator=generator) * std_out).to(attn.c_proj.weight)
            for p, index in [(attn.c_attn.weight, (slice(None), c)) for c in cols] + \
                             [(attn.c_attn.bias, (c,)) for c in cols] + [(attn.c_proj.weight, (rows,))]:
                for moment in ("exp_avg", "exp_avg_sq"):
                    if moment in opt.state.get(p, {}):
                        opt.state[p][moment][index] = 0.0


def _kinds(cfg: TrainConfig) -> tuple[str, ...]:
    return tuple(k.strip() for k in cfg.synthetic_kinds.split(",") if k.strip())


def synthetic_alphabet(cfg: TrainConfig, train_ids: np.ndarray, tok: Tokenizer) -> np.ndarray | None:
    """The ids synthetic rows draw from: the text's ``synthetic_vocab`` most frequent tokens but BOS
    (ties broken by id), or None for the whole vocabulary."""
    if not cfg.synthetic_vocab or cfg.synthetic_vocab >= tok.vocab_size - 1:
        return None
    counts = np.bincount(train_ids, minlength=tok.vocab_size).astype(np.int64)
    if tok.bos_token_id is not None:
        counts[tok.bos_token_id] = -1
    return np.sort(np.argsort(-counts, kind="stable")[: cfg.synthetic_vocab])


def _synthetic(cfg: TrainConfig, rng: np.random.Generator, rows: int, n_ctx: int, tok: Tokenizer,
               alphabet: np.ndarray | None) -> np.ndarray:
    if alphabet is None:
        return C.synthetic_batch(rng, rows, n_ctx, tok.vocab_size, tok.bos_token_id, kinds=_kinds(cfg))
    return alphabet[C.synthetic_batch(rng, rows, n_ctx, len(alphabet), kinds=_kinds(cfg))]


def _batch(cfg: TrainConfig, rng: np.random.Generator, step: int, train_ids: np.ndarray, tok: Tokenizer,
           alphabet: np.ndarray | None = None):
    """The batch of ``step``: synthetic during the start, else text with a ``synthetic_frac`` share of synthetic rows."""
    if step < cfg.synthetic_steps and cfg.synthetic_len and cfg.synthetic_len < cfg.n_ctx:
        rows = cfg.batch_size * cfg.n_ctx // cfg.synthetic_len
        return _synthetic(cfg, rng, rows, cfg.synthetic_len, tok, alphabet)
    syn = cfg.batch_size if step < cfg.synthetic_steps else int(round(cfg.synthetic_frac * cfg.batch_size))
    parts = []
    if syn < cfg.batch_size:
        parts.append(C.batch(train_ids, rng, cfg.batch_size - syn, cfg.n_ctx, cfg.repeat_frac, cfg.random_repeat_frac,
                             tok.vocab_size, tok.bos_token_id))
    if syn:
        parts.append(_synthetic(cfg, rng, syn, cfg.n_ctx, tok, alphabet))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


@contextlib.contextmanager
def _held_interrupts():
    """Ctrl-C (SIGINT) only counts presses, so the loop can finish its step and save it.

    A KeyboardInterrupt raised mid-step could land between the optimiser's updates of two
    parameters, or between ``opt.step()`` and the step counter: a state no resume can continue
    exactly from. Later presses are held too, so one during the save cannot cut it short (to stop
    a hung run, SIGTERM or SIGQUIT still work). Left alone off the main thread, or where someone
    else has set a SIGINT handler (a sweep's worker, a notebook kernel's own).
    """
    held = SimpleNamespace(presses=0)
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield held
        return

    def press(signum, frame):
        held.presses += 1
        if held.presses == 2:  # a second press usually means "is it doing anything?"
            print("poslens: saving a checkpoint of this step before stopping; one moment", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, press)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)


def train(cfg: TrainConfig, progress: bool = True, stop_after: int | None = None, stop_at: int | None = None) -> Path:
    """Train (or resume) and export; returns the exported model directory.

    ``stop_after`` ends the run early after that many steps in this call (for tests of
    resuming); ``stop_at`` once the run reaches that step (to train in stages with
    different options, exactly reproducibly; a run already at ``stop_at`` trains nothing,
    one past it is refused). Both checkpoint and export first.
    """
    cfg = dataclasses.replace(cfg, corpus=[str(c) for c in listed(cfg.corpus)])  # one file given alone: not its letters
    check_options(cfg)
    out = Path(cfg.out)
    state_path = out / STATE
    state = None
    if state_path.is_file():
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=False)
            old = TrainConfig.from_dict(state["config"])
            _ = state["log"]["step"], state["model"], state["optimizer"]  # what a resume reads
        except Exception as exc:  # noqa: BLE001 - damage of any kind surfaces as any error from unpickling
            raise InvalidInputError(
                f"{state_path} cannot be read as a run's saved state ({type(exc).__name__}): it is damaged or is "
                "not one; move it away to start this run from step 0, or give another --out") from None
        diff = [k for k in TrainConfig.SHAPE_KEYS if getattr(old, k) != getattr(cfg, k)]
        if diff:
            raise InvalidInputError(
                f"{state_path} holds a run with different {', '.join(diff)} "
                f"({', '.join(f'{k}={getattr(old, k)}' for k in diff)}); use another --out or the same shape"
            )
        # Else nothing would train, yet the export and the log would be rewritten as a new stage
        # claiming the shorter schedule.
        if state["log"]["step"] > cfg.max_steps:
            raise InvalidInputError(f"{state_path} holds a run already at step {state['log']['step']}, past "
                                    f"--max-steps {cfg.max_steps}; give --max-steps >= {state['log']['step']} "
                                    "or another --out")
        if stop_at is not None and state["log"]["step"] > stop_at:  # else one step more, with these options
            raise InvalidInputError(f"{state_path} holds a run already at step {state['log']['step']}, past "
                                    f"--stop-at {stop_at}; give --stop-at >= {state['log']['step']} or another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()  # a folder we may not write to fails here, not at its first file
    except OSError as exc:  # --out at a file, or under one, or read-only
        raise InvalidInputError(f"cannot write the run directory {out} ({exc.strerror}); choose another --out") from None
    # Before anything reads or writes model/: a run killed mid-export may have left it missing (between
    # the swap's renames), and one killed mid-snapshot a temporary folder of a step this run may never write.
    recover_dir(out / "model")
    recover_dirs(out / "model" / "history", "step-*")
    tok, train_ids, val_ids = _prepare_data(cfg, out)
    alphabet = synthetic_alphabet(cfg, train_ids, tok)
    if not (out / "tokenizer.json").is_file():
        tok.save(out)
    mcfg = model_config(cfg, tok)
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = TrainableGPT2(mcfg, cfg.wpe_init_scale, cfg.wpe_init, cfg.init_std)
    model.init_weights(torch.Generator().manual_seed(cfg.seed))
    if cfg.attn_only:
        model.zero_mlps()
    model.to(device)
    # W_pos has a group of its own so its learning rate can be scaled or held at zero.
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if p.dim() >= 2 and n != "wpe.weight"]
    no_decay = [p for n, p in trained if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0},
         {"params": [model.wpe.weight], "weight_decay": cfg.weight_decay}],
        lr=cfg.lr, betas=(0.9, 0.95),
    )
    log = {
        "config": cfg.to_dict(), "model": mcfg.to_dict(), "tokenizer": tok.source,
        "train_tokens": int(len(train_ids)), "val_tokens": int(len(val_ids)),
        "unigram_entropy_val": C.unigram_entropy(val_ids),
        "unigram_cross_entropy_val": C.unigram_cross_entropy(train_ids, val_ids, tok.vocab_size),
        "history": [], "step": 0, "tokens_seen": 0, "wall_seconds": 0.0,
    }
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        # A resumed run may change the decay (train in stages): the options win over the saved state.
        opt.param_groups[0]["weight_decay"] = cfg.weight_decay
        opt.param_groups[2]["weight_decay"] = cfg.weight_decay
        log = state["log"]
        log["config"] = cfg.to_dict()
    # Each change of options while resuming starts a stage, so a model card can say exactly how
    # the weights were made.
    stages = log.setdefault("stages", [])
    if not stages or stages[-1]["options"] != _stage_options(cfg):
        stages.append({"from_step": log["step"], "options": _stage_options(cfg)})
        if _reinit(cfg):  # once, when the stage starts; a resumed stage keeps what it has learned since
            reinit_heads(model, opt, _reinit(cfg), torch.Generator().manual_seed(cfg.seed + 1 + log["step"]))
    step = log["step"]
    tokens_per_step = cfg.batch_size * cfg.n_ctx
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", unit="step", dynamic_ncols=True, disable=not progress)
    t_last, steps_run = time.time(), 0
    snaps = set(H.snapshot_steps(cfg.snapshots, cfg.max_steps))

    def snapshot():
        if step in snaps and not H.has_snapshot(out / "model", step):
            val = entry.get("val_loss") if step else None
            if val is None:
                val = evaluate(model, val_ids, cfg, device)
            H.write_snapshot(model, tok, out / "model", step, log["tokens_seen"], val)

    entry: dict = {}
    snapshot()  # the initialisation, when asked for

    saved_at = None

    def checkpoint():
        """Save the whole state, then export the model."""
        nonlocal t_last, saved_at
        saved_at = step
        now = time.time()
        log["wall_seconds"] += now - t_last
        t_last = now
        atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "config": cfg.to_dict(),
                           "log": log}, state_path)
        export(model, tok, out / "model", log)

    frozen_params = _frozen_params(cfg, model)
    with _held_interrupts() as held:
        while step < cfg.max_steps and (stop_at is None or step < stop_at):
            rng = np.random.default_rng([cfg.seed, step])
            x = _batch(cfg, rng, step, train_ids, tok, alphabet)
            b = torch.from_numpy(x).to(device)
            for g in opt.param_groups:
                g["lr"] = _lr(cfg, step)
            opt.param_groups[2]["lr"] = 0.0 if step < cfg.wpe_freeze_steps else _lr(cfg, step) * cfg.wpe_lr_scale
            t0 = time.time()
            with _autocast(cfg):
                loss = model.loss(b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for p in frozen_params:
                p.grad = None  # AdamW skips a parameter without a gradient (no step, no decay); its state is kept
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            steps_run += 1
            log["step"] = step
            log["tokens_seen"] += tokens_per_step
            entry = {"step": step, "loss": float(loss.detach())}
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                entry["val_loss"] = evaluate(model, val_ids, cfg, device)
            log["history"].append(entry)
            bar.update(1)
            post = {"loss": f"{entry['loss']:.3f}", "tok/s": f"{tokens_per_step / max(time.time() - t0, 1e-9):.0f}"}
            if "val_loss" in entry:
                post["val"] = f"{entry['val_loss']:.3f}"
            bar.set_postfix(post)
            snapshot()
            stop = (stop_after is not None and steps_run >= stop_after) or (stop_at is not None and step >= stop_at)
            if step % cfg.ckpt_every == 0 or step == cfg.max_steps or stop or held.presses:
                checkpoint()
            if stop or held.presses:
                break
        bar.close()
        # A run resumed at max_steps (or at its stop_at) trains nothing, yet must export: the run that got
        # there may have been killed before its export was complete.
        if (step >= cfg.max_steps or step == stop_at) and saved_at != step:
            checkpoint()
    if held.presses and step < cfg.max_steps:  # a press during the last step: the run is complete anyway
        raise Interrupted(f"saved step {step} of {cfg.max_steps} in {state_path}; run the same command to resume")
    return out / "model"
