"""Options of a training run; saved with every checkpoint so a resume can check them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class TrainConfig:
    corpus: list[str] = field(default_factory=list)
    out: str = "runs/tiny"
    tokenizer: str = "bpe"  # "bpe" (trained on the corpus) or "gpt2"
    vocab_size: int = 4096  # for "bpe"
    n_layers: int = 4
    n_heads: int = 4
    d_model: int = 128
    n_ctx: int = 256
    batch_size: int = 16
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 200
    max_steps: int = 10000
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    wpe_init_scale: float = 0.1  # x GPT-2's 0.02 init: a small W_pos lets positional structure form cleanly
    # "normal" (GPT-2's) or "sinusoidal": the transformer's fixed table, rescaled to the same entry
    # std and then learned, so neighbouring positions are separable by a linear map from step 0
    wpe_init: str = "normal"
    # Std of the attention and MLP matrices at initialisation (GPT-2's 0.02; residual projections are
    # divided by sqrt(2 n_layers)). At d_model 64, 0.02 left attention near uniform for long: in 2-layer
    # pilots no induction head formed by step 2,000 at 0.02, while PyTorch's default (~0.07 here) formed
    # one by 1,250.
    init_std: float = 0.02
    repeat_frac: float = 0.0  # share of sequences in which a span of natural text occurs twice
    random_repeat_frac: float = 0.0  # share of sequences in which a span of random tokens occurs twice
    # The first steps train on synthetic random-token windows, no text (train.corpus.synthetic_batch):
    # in a model that sees text from step 0 the induction circuit (previous-token head + induction
    # head) did not form within 6,000 steps with random repeats in 1/4 of the windows (nor 1,000 with 3/4).
    synthetic_steps: int = 0
    # After the synthetic start, this share of every batch's rows stays synthetic, so the circuits the
    # start rewards keep a gradient while text trains the language model.
    synthetic_frac: float = 0.0
    # Window length of the synthetic start (0: n_ctx), same tokens per step. In short windows attention
    # is spread over few keys, so copying pays off at once and the previous-token head forms sooner.
    synthetic_len: int = 0
    # Row kinds of the synthetic windows, in turn (train.corpus.synthetic_batch): repeat, lag2, dup.
    synthetic_kinds: str = "repeat,lag2"
    # Synthetic rows draw their tokens from the text's this-many most frequent tokens (0: the whole
    # vocabulary). In 2-layer pilots a standard induction head formed in ~1,000 steps at a 256-token
    # alphabet and not within 1,250 at 2,048, where each token recurs 8x less often per row.
    synthetic_vocab: int = 0
    # An attention-only model (the circuits literature's toy models): every MLP's weights and biases
    # are held at zero, so each block adds its attention output only; it still exports as a GPT-2
    # checkpoint. In 2-layer pilots an MLP delayed the induction circuit (a duplicate-token route
    # formed first): no induction head by step 2,000 with one, 0.76 at 1,250-1,750 without.
    attn_only: bool = False
    # W_pos learning rate as a multiple of the others', and steps during which W_pos is not updated at
    # all: a previous-token head formed against a fixed (e.g. sinusoidal) table cannot rewrite it.
    wpe_lr_scale: float = 1.0
    wpe_freeze_steps: int = 0
    # Blocks held fixed (comma-separated layer indices) for a stage of a curriculum: e.g. so that a
    # task must be learned by the earlier layers' heads while the later ones keep what they do;
    # ``unembed`` also holds the token (un)embedding and final LayerNorm, so a later layer's existing
    # output cannot simply be re-read as the new task's answer.
    freeze_layers: str = ""
    # Heads ("layer.head", comma-separated) drawn afresh when a stage starts, with their optimizer
    # moments cleared: a head whose attention has saturated (e.g. ~0.99 on the current token) has
    # almost no query-key gradient left, so a later task cannot recruit it.
    reinit_heads: str = ""
    # Log-spaced snapshots of the whole model (float16, ``model/history/``), step 0 and the last included.
    snapshots: int = 0
    val_frac: float = 0.05
    eval_every: int = 500
    eval_batches: int = 20
    ckpt_every: int = 250
    seed: int = 0
    dtype: str = "float32"  # autocast dtype; "bfloat16" pays only where the hardware has bf16 matmuls (GPUs, AVX512-BF16/AMX CPUs)
    device: str = "cpu"

    # Options whose change makes an existing checkpoint unusable for resuming.
    SHAPE_KEYS = ("tokenizer", "vocab_size", "n_layers", "n_heads", "d_model", "n_ctx", "attn_only")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
