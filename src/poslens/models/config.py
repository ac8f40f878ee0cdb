"""The shape and options of a GPT-2-family model, read from a Hugging Face config.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import CorruptCheckpointError, UnsupportedArchitectureError

# gelu_new is GPT-2's tanh approximation; torch calls it gelu(approximate="tanh").
SUPPORTED_ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu", "relu")


@dataclass(frozen=True)
class ModelConfig:
    """GPT-2 hyper-parameters under TransformerLens names.

    >>> cfg = ModelConfig(n_layers=2, n_heads=4, d_model=64, n_ctx=128, d_vocab=1000)
    >>> cfg.d_head, cfg.d_mlp
    (16, 256)
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
    scale_attn_weights: bool = True
    # poslens extension for hand-built models (twisted pair): "LN" or "none".
    normalization: str = "LN"
    bos_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.d_mlp is None:
            object.__setattr__(self, "d_mlp", 4 * self.d_model)
        if self.d_model % self.n_heads:
            raise UnsupportedArchitectureError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}"
            )
        if self.act_fn not in SUPPORTED_ACTIVATIONS:
            raise UnsupportedArchitectureError(
                f"activation '{self.act_fn}' is not supported; use one of {', '.join(SUPPORTED_ACTIVATIONS)}"
            )

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_params(self) -> int:
        """Parameters of the model, counting the tied unembedding once."""
        d, m = self.d_model, self.d_mlp
        per_layer = 4 * d  # two LayerNorms
        per_layer += 3 * d * d + 3 * d + d * d + d  # attention
        per_layer += d * m + m + m * d + d  # MLP
        return self.d_vocab * d + self.n_ctx * d + self.n_layers * per_layer + 2 * d

    # ---- Hugging Face config.json -------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, hf: dict[str, Any], source: str = "config.json") -> ModelConfig:
        model_type = hf.get("model_type")
        archs = hf.get("architectures") or []
        if model_type != "gpt2":
            raise UnsupportedArchitectureError(
                f"{source} describes a '{model_type}' model ({', '.join(archs) or 'no architecture'}); "
                "poslens reads GPT-2-architecture checkpoints (model_type 'gpt2') only"
            )
        try:
            return cls(
                n_layers=int(hf["n_layer"]),
                n_heads=int(hf["n_head"]),
                d_model=int(hf["n_embd"]),
                n_ctx=int(hf.get("n_positions", hf.get("n_ctx"))),
                d_vocab=int(hf["vocab_size"]),
                d_mlp=int(hf["n_inner"]) if hf.get("n_inner") else None,
                act_fn=hf.get("activation_function", "gelu_new"),
                eps=float(hf.get("layer_norm_epsilon", 1e-5)),
                scale_attn_by_inverse_layer_idx=bool(hf.get("scale_attn_by_inverse_layer_idx", False)),
                scale_attn_weights=bool(hf.get("scale_attn_weights", True)),
                normalization=hf.get("poslens_normalization", "LN"),
                bos_token_id=hf.get("bos_token_id"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptCheckpointError(f"{source} lacks or mangles GPT-2 field {exc}; is it a GPT-2 config?") from exc

    @classmethod
    def from_file(cls, path: Path) -> ModelConfig:
        try:
            hf = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise CorruptCheckpointError(f"{path} is not valid JSON ({exc}); re-download the checkpoint") from exc
        return cls.from_hf_dict(hf, source=str(path))

    def to_hf_dict(self) -> dict[str, Any]:
        """A config.json that ``transformers.GPT2LMHeadModel`` accepts."""
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
            "tie_word_embeddings": True,
        }
        # Explicit nulls: left out, transformers' GPT2Config defaults them to 50256, which is
        # outside a small vocabulary and makes it warn.
        hf["bos_token_id"] = hf["eos_token_id"] = self.bos_token_id
        if self.normalization != "LN":
            hf["poslens_normalization"] = self.normalization
        return hf

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["d_head"] = self.d_head
        return d
