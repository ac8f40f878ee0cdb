"""GPT-2 (and the Stanford CRFM runs): Conv1D layout [in, out], fused c_attn, tied unembedding
(``lm_head.weight`` where ``tie_word_embeddings`` is false)."""

from __future__ import annotations

from typing import Any

from ...errors import CorruptCheckpointError
from ..config import ModelConfig
from .base import Family, Src, layer_norm, mlp, same, zeros


class GPT2(Family):
    name = "gpt2"
    model_types = ("gpt2",)
    prefixes = ("transformer.",)
    description = "GPT-2: learned positions, LayerNorm, GELU, fused QKV (Conv1D), tied unembedding (unless configured untied)"

    def config(self, hf: dict[str, Any], source: str) -> ModelConfig:
        try:
            return ModelConfig(
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
                tied_embeddings=bool(hf.get("tie_word_embeddings", True)),
                bos_token_id=hf.get("bos_token_id"),
                hf_config=dict(hf),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptCheckpointError(f"{source} lacks or mangles GPT-2 field {exc}; is it a GPT-2 config?") from exc

    def tensors(self, cfg: ModelConfig) -> dict[str, Src]:
        d, H, dh = cfg.d_model, cfg.n_heads, cfg.d_head
        t = {"embed.W_E": Src(("wte.weight",), same), "pos_embed.W_pos": Src(("wpe.weight",), same)}
        for l in range(cfg.n_layers):
            p, h = f"blocks.{l}.", f"h.{l}."
            layer_norm(t, p + "ln1", h + "ln_1")
            for i, x in enumerate("QKV"):
                t[p + f"attn.W_{x}"] = Src((h + "attn.c_attn.weight",), _qkv_w(i, d, H, dh))
            for i, x in enumerate("QKV"):
                t[p + f"attn.b_{x}"] = Src((h + "attn.c_attn.bias",), _qkv_b(i, d, H, dh))
            t[p + "attn.W_O"] = Src((h + "attn.c_proj.weight",), lambda w: w.reshape(H, dh, d))
            t[p + "attn.b_O"] = Src((h + "attn.c_proj.bias",), same)
            layer_norm(t, p + "ln2", h + "ln_2")
            mlp(t, p + "mlp", h + "mlp.c_fc", h + "mlp.c_proj", cfg)
        layer_norm(t, "ln_final", "ln_f")
        t["unembed.W_U"] = Src(("wte.weight",) if cfg.tied_embeddings else ("lm_head.weight",), lambda w: w.T)
        t["unembed.b_U"] = zeros(cfg.d_vocab)
        return t

    def shapes(self, cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
        d, m = cfg.d_model, cfg.d_mlp
        s = {"wte.weight": (cfg.d_vocab, d), "wpe.weight": (cfg.n_ctx, d)}
        if not cfg.tied_embeddings:
            s["lm_head.weight"] = (cfg.d_vocab, d)
        for l in range(cfg.n_layers):
            h = f"h.{l}."
            if cfg.normalization == "LN":
                for part in ("ln_1", "ln_2"):
                    s[h + part + ".weight"] = s[h + part + ".bias"] = (d,)
            s.update({h + "attn.c_attn.weight": (d, 3 * d), h + "attn.c_attn.bias": (3 * d,),
                      h + "attn.c_proj.weight": (d, d), h + "attn.c_proj.bias": (d,),
                      h + "mlp.c_fc.weight": (d, m), h + "mlp.c_fc.bias": (m,),
                      h + "mlp.c_proj.weight": (m, d), h + "mlp.c_proj.bias": (d,)})
        if cfg.normalization == "LN":
            s["ln_f.weight"] = s["ln_f.bias"] = (d,)
        return s


def _qkv_w(i: int, d: int, H: int, dh: int):
    # Conv1D layout [d_model, 3 * d_model]: Q, K, V thirds, heads contiguous within each.
    return lambda w: w[:, i * d:(i + 1) * d].reshape(d, H, dh).permute(1, 0, 2).contiguous()


def _qkv_b(i: int, d: int, H: int, dh: int):
    return lambda b: b[i * d:(i + 1) * d].reshape(H, dh).contiguous()


def to_hf_state_dict(get, cfg: ModelConfig) -> dict:
    """GPT-2 tensors in Hugging Face names from a TransformerLens-name getter (for saving)."""
    import torch

    sd = {"wte.weight": get("embed.W_E"), "wpe.weight": get("pos_embed.W_pos"),
          "ln_f.weight": get("ln_final.w"), "ln_f.bias": get("ln_final.b")}
    for l in range(cfg.n_layers):
        g = lambda k: get(f"blocks.{l}.{k}")  # noqa: E731
        qkv_w = torch.cat([g(f"attn.W_{x}").permute(1, 0, 2).reshape(cfg.d_model, -1) for x in "QKV"], dim=1)
        qkv_b = torch.cat([g(f"attn.b_{x}").reshape(-1) for x in "QKV"])
        sd.update({
            f"h.{l}.ln_1.weight": g("ln1.w"), f"h.{l}.ln_1.bias": g("ln1.b"),
            f"h.{l}.ln_2.weight": g("ln2.w"), f"h.{l}.ln_2.bias": g("ln2.b"),
            f"h.{l}.attn.c_attn.weight": qkv_w, f"h.{l}.attn.c_attn.bias": qkv_b,
            f"h.{l}.attn.c_proj.weight": g("attn.W_O").reshape(cfg.d_model, cfg.d_model),
            f"h.{l}.attn.c_proj.bias": g("attn.b_O"),
            f"h.{l}.mlp.c_fc.weight": g("mlp.W_in"), f"h.{l}.mlp.c_fc.bias": g("mlp.b_in"),
            f"h.{l}.mlp.c_proj.weight": g("mlp.W_out"), f"h.{l}.mlp.c_proj.bias": g("mlp.b_out"),
        })
    if not cfg.tied_embeddings:
        sd["lm_head.weight"] = get("unembed.W_U").T
    return {k: v.contiguous() for k, v in sd.items()}
