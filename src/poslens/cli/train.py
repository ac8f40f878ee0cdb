"""`poslens train`: train a GPT-2-architecture model on text files."""

from __future__ import annotations

from pathlib import Path

import click

from ..train.config import TrainConfig

D = TrainConfig()


@click.command("train")
@click.option("--corpus", "-c", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Plain-text file(s) to train on (repeat the option).")
@click.option("--out", "-o", default=D.out, show_default=True, help="Run directory (state, logs, exported model/).")
@click.option("--tokenizer", type=click.Choice(["bpe", "gpt2"]), default=D.tokenizer, show_default=True,
              help="bpe: byte-level BPE trained on the corpus; gpt2: GPT-2's own 50,257 tokens.")
@click.option("--vocab-size", default=D.vocab_size, show_default=True, help="Vocabulary of the trained BPE.")
@click.option("--n-layers", default=D.n_layers, show_default=True)
@click.option("--n-heads", default=D.n_heads, show_default=True)
@click.option("--d-model", default=D.d_model, show_default=True)
@click.option("--n-ctx", default=D.n_ctx, show_default=True)
@click.option("--batch-size", default=D.batch_size, show_default=True)
@click.option("--lr", default=D.lr, show_default=True, help="Peak learning rate (AdamW, cosine decay).")
@click.option("--min-lr", default=D.min_lr, show_default=True)
@click.option("--weight-decay", default=D.weight_decay, show_default=True, help="AdamW weight decay of the matrices.")
@click.option("--warmup-steps", default=D.warmup_steps, show_default=True)
@click.option("--max-steps", default=D.max_steps, show_default=True)
@click.option("--wpe-init-scale", default=D.wpe_init_scale, show_default=True,
              help="W_pos init std as a multiple of GPT-2's 0.02.")
@click.option("--wpe-init", type=click.Choice(["normal", "sinusoidal"]), default=D.wpe_init, show_default=True,
              help="W_pos init: GPT-2's normal, or the transformer's sinusoidal table at the same std (then learned).")
@click.option("--init-std", default=D.init_std, show_default=True,
              help="Std of the attention and MLP matrices at init (GPT-2: 0.02); small models may need more.")
@click.option("--repeat-frac", default=D.repeat_frac, show_default=True,
              help="Share of sequences in which a span of natural text occurs twice.")
@click.option("--random-repeat-frac", default=D.random_repeat_frac, show_default=True,
              help="Share of sequences in which a span of random tokens occurs twice (forms induction heads early).")
@click.option("--synthetic-steps", default=D.synthetic_steps, show_default=True,
              help="First steps on synthetic random-token windows only, no text: repeated spans and "
                   "lag-2 copies (forms a previous-token head and the induction circuit).")
@click.option("--synthetic-frac", default=D.synthetic_frac, show_default=True,
              help="After the synthetic start, this share of each batch stays synthetic (keeps those circuits trained).")
@click.option("--synthetic-len", default=D.synthetic_len, show_default=True,
              help="Window length of the synthetic start (0: n-ctx); the same tokens per step in more, shorter rows.")
@click.option("--synthetic-kinds", default=D.synthetic_kinds, show_default=True,
              help="Row kinds of the synthetic windows, in turn: repeat (induction), lag2 (previous-token), "
                   "lag2perm (previous-token, through a fixed permutation), "
                   "dup (a marker after each repeated token: duplicate-token).")
@click.option("--attn-only/--no-attn-only", default=D.attn_only, show_default=True,
              help="Attention-only model: every MLP held at zero (exports as a GPT-2 checkpoint all the same).")
@click.option("--synthetic-vocab", default=D.synthetic_vocab, show_default=True,
              help="Synthetic rows draw from the text's this-many most frequent tokens (0: all); a small "
                   "alphabet (e.g. 256) makes each token recur often enough for the induction circuit to form.")
@click.option("--wpe-lr-scale", default=D.wpe_lr_scale, show_default=True,
              help="W_pos learning rate as a multiple of the others'.")
@click.option("--wpe-freeze-steps", default=D.wpe_freeze_steps, show_default=True,
              help="Steps at the start during which W_pos is not updated.")
@click.option("--freeze-layers", default=D.freeze_layers, show_default=True,
              help="Comma-separated layer indices whose blocks are not updated (a curriculum stage); "
                   "'unembed' also holds the token (un)embedding and the final LayerNorm.")
@click.option("--reinit-heads", default=D.reinit_heads, show_default=True,
              help="Comma-separated heads (layer.head, e.g. 0.1,0.3) drawn afresh when this stage starts.")
@click.option("--snapshots", default=D.snapshots, show_default=True,
              help="Log-spaced float16 snapshots of the model in OUT/model/history (plus step 0).")
@click.option("--val-frac", default=D.val_frac, show_default=True, help="Held-out share of each file (its end).")
@click.option("--eval-every", default=D.eval_every, show_default=True)
@click.option("--eval-batches", default=D.eval_batches, show_default=True, help="Held-out batches per evaluation.")
@click.option("--ckpt-every", default=D.ckpt_every, show_default=True)
@click.option("--seed", default=D.seed, show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default=D.dtype, show_default=True,
              help="Autocast dtype; bfloat16 is faster only on GPUs and CPUs with bf16 instructions (AVX512-BF16, AMX): on others it is emulated, several times slower.")
@click.option("--device", default=D.device, show_default=True)
@click.option("--stop-at", type=int, default=None,
              help="Checkpoint and stop once the run reaches this step (run again to continue).")
def train_cmd(corpus, out, stop_at, **opts):
    """Train a GPT-2 (learned positions, pre-LN, gelu_new, tied unembedding); resumes from OUT if interrupted.

    Example: poslens train -c kjv.txt -c shakespeare.txt --out runs/mine --max-steps 2000
    """
    cfg = TrainConfig(corpus=[str(c) for c in corpus], out=str(out), **opts)
    from ..train.loop import train

    model_dir = train(cfg, stop_at=stop_at)
    click.echo(f"model written to {model_dir}")
