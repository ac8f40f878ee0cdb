"""The shape and options of a decoder-only transformer, under TransformerLens names.

One :class:`ModelConfig` describes every family poslens runs (GPT-2, GPT-Neo, OPT,
GPT-NeoX/Pythia, Llama-style); :meth:`ModelConfig.from_hf_dict` reads a Hugging Face
``config.json`` through the family adapter named by its ``model_type``
(:mod:`poslens.models.families`).

Positional contract other code reads: ``positional`` is ``"learned"`` (a W_pos table) or
``"rotary"``; rotary models rotate the first ``rotary_dim`` dimensions of each query and key
head, pairing dimension ``i`` with ``i + rotary_dim // 2`` for ``i < rotary_dim // 2`` (the
rotate-half convention of GPT-NeoX and Llama) at frequency ``rotary_base ** (-2i / rotary_dim)``.
``window`` is the local / sliding attention window (a query at ``i`` sees keys ``j`` with
``0 <= i - j < window``) on the layers in ``local_layers`` (every layer when that is None).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CorruptCheckpointError, UnsupportedArchitectureError

# gelu_new is GPT-2's tanh approximation; torch calls it gelu(approximate="tanh").
SUPPORTED_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu", "relu", "silu", "swish", "quick_gelu")
NORMALIZATIONS = ("LN", "RMS", "none")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters under TransformerLens names (GPT-2 defaults).

    >>> cfg = ModelConfig(n_layers=2, n_heads=4, d_model=64, n_ctx=128, d_vocab=1000)
    >>> cfg.d_head, cfg.d_mlp, cfg.attention_scale(0)
    (16, 256, 0.25)
    """

    n_layers: int
    n_heads: int
    d_model: int
    n_ctx: int
    d_vocab: int
    d_mlp: int | None = None
    act_fn: str = "gelu_new"
    eps: float = 1e-5
    # Stanford CRFM's runs divide attention scores by (layer + 1) as well.
    scale_attn_by_inverse_layer_idx: bool = False
    # False: scores are not divided by sqrt(d_head) (GPT-Neo).
    scale_attn_weights: bool = True
    # "LN", "RMS" (Llama) or "none" (hand-built models such as the twisted pair).
    normalization: str = "LN"
    bos_token_id: int | None = None
    family: str = "gpt2"
    positional: str = "learned"
    rotary_dim: int = 0
    rotary_base: float = 10000.0
    n_key_value_heads: int | None = None
    window: int | None = None
    local_layers: tuple[int, ...] | None = None
    head_dim: int | None = None  # when d_head is not d_model // n_heads (some Llama-style models)
    pre_norm: bool = True  # False: OPT-350m's post-LayerNorm blocks
    final_norm: bool = True
    parallel_attn_mlp: bool = False  # GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x))
    gated_mlp: bool = False  # Llama's SwiGLU: W_out(act(x W_gate) * (x W_in))
    tied_embeddings: bool = True
    qkv_bias: bool = True
    out_bias: bool = True
    mlp_bias: bool = True
    # The config.json this came from (kept for the report and fingerprints of non-GPT-2 models).
    hf_config: dict | None = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if self.d_mlp is None:
            object.__setattr__(self, "d_mlp", 4 * self.d_model)
        if self.n_key_value_heads is None:
            object.__setattr__(self, "n_key_value_heads", self.n_heads)
        if self.local_layers is not None:
            object.__setattr__(self, "local_layers", tuple(self.local_layers))
        where = f"{self.family} config"
        if self.head_dim is None and self.d_model % self.n_heads:
            raise UnsupportedArchitectureError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}"
            )
        if self.act_fn not in SUPPORTED_ACTIVATIONS:
            raise UnsupportedArchitectureError(
                f"activation '{self.act_fn}' is not supported; use one of {', '.join(SUPPORTED_ACTIVATIONS)}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise UnsupportedArchitectureError(
                f"normalization '{self.normalization}' is not supported; use one of {', '.join(NORMALIZATIONS)}")
        if self.n_heads % self.n_key_value_heads:
            raise UnsupportedArchitectureError(
                f"{where}: n_heads={self.n_heads} is not a multiple of n_key_value_heads={self.n_key_value_heads}")
        if self.positional == "rotary":
            if not 0 < self.rotary_dim <= self.d_head or self.rotary_dim % 2:
                raise UnsupportedArchitectureError(
                    f"{where}: the rotary fraction leaves {self.rotary_dim} rotary dimensions of a {self.d_head}-"
                    "dimension head; it must give an even number between 2 and d_head (check rotary_pct / "
                    "partial_rotary_factor)")
        elif self.positional == "learned":
            if self.rotary_dim:
                raise UnsupportedArchitectureError(f"{where}: learned positions with rotary_dim={self.rotary_dim}")
        else:
            raise UnsupportedArchitectureError(f"positional '{self.positional}' is not 'learned' or 'rotary'")
        if self.window is not None and not 0 < self.window <= self.n_ctx:
            raise UnsupportedArchitectureError(
                f"{where}: attention window {self.window} is {'larger than' if self.window > 0 else 'outside'} "
                f"the context n_ctx={self.n_ctx}; fix the window (sliding_window / window_size) in config.json")

    @property
    def d_head(self) -> int:
        return self.head_dim or self.d_model // self.n_heads

    @property
    def model_type(self) -> str:
        """The architecture as its config.json names it ("mistral", "qwen2"), for messages; ``family``
        is the adapter that reads it, and the llama adapter reads Mistral and Qwen2 too."""
        return (self.hf_config or {}).get("model_type") or self.family

    def attention_scale(self, layer: int) -> float:
        """The factor layer ``layer``'s attention scores are multiplied by: 1/sqrt(d_head) if
        the model scales its scores (1 otherwise), divided by ``layer + 1`` for models that
        scale by the inverse layer index (the Stanford CRFM runs)."""
        scale = 1.0 / math.sqrt(self.d_head) if self.scale_attn_weights else 1.0
        if self.scale_attn_by_inverse_layer_idx:
            scale /= layer + 1
        return scale

    def window_at(self, layer: int) -> int | None:
        """The attention window of layer ``layer`` (None: full causal attention)."""
        if self.window is None or (self.local_layers is not None and layer not in self.local_layers):
            return None
        return self.window

    @property
    def n_params(self) -> int:
        """Parameters of the model as its family stores them (RMSNorm without biases, OPT's
        token embedding at word_embed_proj_dim beside project_in/out), counting a tied
        unembedding once: the count transformers gives."""
        from .families import family_of

        return sum(math.prod(shape) for shape in family_of(self).shapes(self).values())

    # ---- Hugging Face config.json -------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, hf: dict[str, Any], source: str = "config.json") -> ModelConfig:
        """Read a Hugging Face config of any supported family (see :mod:`poslens.models.families`)."""
        from .families import adapter_for

        return adapter_for(hf, source).config(hf, source)

    @classmethod
    def from_file(cls, path: Path) -> ModelConfig:
        try:
            hf = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise CorruptCheckpointError(f"{path} is not valid JSON ({exc}); re-download the checkpoint") from exc
        return cls.from_hf_dict(hf, source=str(path))

    def to_hf_dict(self) -> dict[str, Any]:
        """A config.json for this model (GPT-2: one ``transformers.GPT2LMHeadModel`` accepts)."""
        if self.family != "gpt2":
            if self.hf_config is None:
                raise UnsupportedArchitectureError(f"a {self.family} config built in memory has no config.json")
            return dict(self.hf_config)
        hf = {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "n_layer": self.n_layers,
            "n_head": self.n_heads,
            "n_embd": self.d_model,
            "n_positions": self.n_ctx,
            "n_ctx": self.n_ctx,
            "vocab_size": self.d_vocab,
            "n_inner": self.d_mlp,
            "activation_function": self.act_fn,
            "layer_norm_epsilon": self.eps,
            "scale_attn_by_inverse_layer_idx": self.scale_attn_by_inverse_layer_idx,
            "scale_attn_weights": self.scale_attn_weights,
            "attn_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "resid_pdrop": 0.0,
            "tie_word_embeddings": self.tied_embeddings,
        }
        # Explicit nulls: left out, transformers' GPT2Config defaults them to 50256, which is
        # outside a small vocabulary and makes it warn.
        hf["bos_token_id"] = hf["eos_token_id"] = self.bos_token_id
        if self.normalization != "LN":
            hf["poslens_normalization"] = self.normalization
        return hf

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("hf_config", None)
        d["d_head"] = self.d_head
        if d["local_layers"] is not None:
            d["local_layers"] = list(d["local_layers"])
        return d
