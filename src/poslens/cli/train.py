"""`poslens train`: train a GPT-2-architecture model on text files."""

from __future__ import annotations

from pathlib import Path

import click

from ..train.config import TrainConfig
from .common import _out_callback

D = TrainConfig()


def _opt(*decls: str, **kw):
    """An option whose default is TrainConfig's field of the same name, shown in --help."""
    field = decls[0].split("/")[0][2:].replace("-", "_")
    return click.option(*decls, default=getattr(D, field), show_default=True, **kw)


@click.command("train")
@click.option("--corpus", "-c", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Plain-text file(s) to train on (repeat the option).")
@_opt("--out", "-o", callback=_out_callback, help="Run directory (state, logs, exported model/).")
@_opt("--tokenizer", type=click.Choice(["bpe", "gpt2"]),
      help="bpe: byte-level BPE trained on the corpus; gpt2: GPT-2's own 50,257 tokens.")
@_opt("--vocab-size", help="Vocabulary of the trained BPE.")
@_opt("--n-layers")
@_opt("--n-heads")
@_opt("--d-model")
@_opt("--n-ctx")
@_opt("--batch-size")
@_opt("--lr", help="Peak learning rate (AdamW, cosine decay).")
@_opt("--min-lr")
@_opt("--weight-decay", help="AdamW weight decay of the matrices.")
@_opt("--warmup-steps")
@_opt("--max-steps")
@_opt("--wpe-init-scale", help="W_pos init std as a multiple of GPT-2's 0.02.")
@_opt("--wpe-init", type=click.Choice(["normal", "sinusoidal"]),
      help="W_pos init: GPT-2's normal, or the transformer's sinusoidal table at the same std (then learned).")
@_opt("--init-std", help="Std of the attention and MLP matrices at init (GPT-2: 0.02); small models may need more.")
@_opt("--repeat-frac", help="Share of sequences in which a span of natural text occurs twice.")
@_opt("--random-repeat-frac",
      help="Share of sequences in which a span of random tokens occurs twice (forms induction heads early).")
@_opt("--synthetic-steps",
      help="First steps on synthetic random-token windows only, no text: repeated spans and "
           "lag-2 copies (forms a previous-token head and the induction circuit).")
@_opt("--synthetic-frac",
      help="After the synthetic start, this share of each batch stays synthetic (keeps those circuits trained).")
@_opt("--synthetic-len",
      help="Window length of the synthetic start (0: n-ctx); the same tokens per step in more, shorter rows.")
@_opt("--synthetic-kinds",
      help="Row kinds of the synthetic windows, in turn: repeat (induction), lag2 (previous-token), "
           "lag2perm (previous-token, through a fixed permutation), "
           "dup (a marker after each repeated token: duplicate-token), dupdist (near and far copies marked apart), "
           "reverse (stretches recited backwards: duplicate-token after induction).")
@_opt("--attn-only/--no-attn-only",
      help="Attention-only model: every MLP held at zero (exports as a GPT-2 checkpoint all the same).")
@_opt("--synthetic-vocab",
      help="Synthetic rows draw from the text's this-many most frequent tokens (0: all); a small "
           "alphabet (e.g. 256) makes each token recur often enough for the induction circuit to form.")
@_opt("--wpe-lr-scale", help="W_pos learning rate as a multiple of the others'.")
@_opt("--wpe-freeze-steps", help="Steps at the start during which W_pos is not updated.")
@_opt("--freeze-layers",
      help="Comma-separated layer indices whose blocks are not updated (a curriculum stage); "
           "'unembed' also holds the token (un)embedding and the final LayerNorm.")
@_opt("--reinit-heads", help="Comma-separated heads (layer.head, e.g. 0.1,0.3) drawn afresh when this stage starts.")
@_opt("--snapshots", help="Log-spaced float16 snapshots of the model in OUT/model/history (plus step 0).")
@_opt("--val-frac", help="Held-out share of each file (its end).")
@_opt("--eval-every")
@_opt("--eval-batches", help="Held-out batches per evaluation.")
@_opt("--ckpt-every")
@_opt("--seed")
@_opt("--dtype", type=click.Choice(["float32", "bfloat16"]),
      help="Autocast dtype; bfloat16 is faster only on GPUs and CPUs with bf16 instructions (AVX512-BF16, AMX): on others it is emulated, several times slower.")
@_opt("--device")
@click.option("--stop-at", type=int, default=None,
              help="Checkpoint and stop once the run reaches this step: a stage of a curriculum. A run already there "
                   "trains nothing, one past it is refused; continue with a later --stop-at, or none.")
def train_cmd(corpus, out, stop_at, **opts):
    """Train a GPT-2 (learned positions, pre-LN, gelu_new, tied unembedding); resumes from OUT if interrupted.

    Example: poslens train -c kjv.txt -c shakespeare.txt --out runs/mine --max-steps 2000
    """
    cfg = TrainConfig(corpus=[str(c) for c in corpus], out=str(out), **opts)
    from ..train.loop import train

    model_dir = train(cfg, stop_at=stop_at)
    click.echo(f"model written to {model_dir}")
