"""OPT: learned positions stored two rows down (row p + 2 is position p), ReLU, pre- or
post-LayerNorm blocks, and project_in / project_out where word_embed_proj_dim differs
from the hidden size (folded into W_E and W_U, which is exact: both are bias-free linears)."""

from __future__ import annotations

from typing import Any

from ..config import ModelConfig
from .base import Family, Src, layer_norm, linear_in, linear_out, mlp, need, per_head, same, stored_or_zeros, zeros

OFFSET = 2  # OPTLearnedPositionalEmbedding adds 2 to every position id
D = "model.decoder."


class OPT(Family):
    name = "opt"
    model_types = ("opt",)
    prefixes = ("model.", D)
    description = "OPT: learned positions (offset 2), ReLU, project_in/out, pre/post-LayerNorm"

    def config(self, hf: dict[str, Any], source: str) -> ModelConfig:
        d = int(need(hf, "hidden_size", source, "OPT"))
        pre = bool(hf.get("do_layer_norm_before", True))
        bias = bool(hf.get("enable_bias", True))
        return ModelConfig(
            family=self.name, n_layers=int(need(hf, "num_hidden_layers", source, "OPT")),
            n_heads=int(need(hf, "num_attention_heads", source, "OPT")), d_model=d,
            n_ctx=int(need(hf, "max_position_embeddings", source, "OPT")),
            d_vocab=int(need(hf, "vocab_size", source, "OPT")), d_mlp=int(need(hf, "ffn_dim", source, "OPT")),
            act_fn=hf.get("activation_function", "relu"), eps=1e-5, pre_norm=pre,
            final_norm=pre and not hf.get("_remove_final_layer_norm", False),
            qkv_bias=bias, out_bias=bias, mlp_bias=bias,
            tied_embeddings=bool(hf.get("tie_word_embeddings", True)),
            bos_token_id=hf.get("bos_token_id"), hf_config=dict(hf),
        )

    @staticmethod
    def _d_embed(cfg: ModelConfig) -> int:
        return int((cfg.hf_config or {}).get("word_embed_proj_dim") or cfg.d_model)

    def tensors(self, cfg: ModelConfig) -> dict[str, Src]:
        H, dh, d = cfg.n_heads, cfg.d_head, cfg.d_model
        proj = self._d_embed(cfg) != d
        embed = (D + "embed_tokens.weight",)
        t = {"embed.W_E": Src(embed + (D + "project_in.weight",), lambda e, p: e @ p.T) if proj else Src(embed, same),
             "pos_embed.W_pos": Src((D + "embed_positions.weight",), lambda w: w[OFFSET:])}
        for l in range(cfg.n_layers):
            p, h = f"blocks.{l}.", f"{D}layers.{l}."

            layer_norm(t, p + "ln1", h + "self_attn_layer_norm")
            for x, n in zip("QKV", "qkv"):
                t[p + f"attn.W_{x}"] = Src((h + f"self_attn.{n}_proj.weight",), linear_in(H, dh))
            for x, n in zip("QKV", "qkv"):
                t[p + f"attn.b_{x}"] = stored_or_zeros(cfg.qkv_bias, h + f"self_attn.{n}_proj.bias",
                                                       per_head(H, dh), H, dh)
            t[p + "attn.W_O"] = Src((h + "self_attn.out_proj.weight",), linear_out(H, dh))
            t[p + "attn.b_O"] = stored_or_zeros(cfg.out_bias, h + "self_attn.out_proj.bias", same, d)
            layer_norm(t, p + "ln2", h + "final_layer_norm")
            mlp(t, p + "mlp", h + "fc1", h + "fc2", cfg, lambda w: w.T, cfg.mlp_bias)
        if cfg.final_norm:
            layer_norm(t, "ln_final", D + "final_layer_norm")
        unembed = embed if cfg.tied_embeddings else ("lm_head.weight",)
        t["unembed.W_U"] = (Src(unembed + (D + "project_out.weight",), lambda e, p: p.T @ e.T) if proj
                            else Src(unembed, lambda w: w.T))
        t["unembed.b_U"] = zeros(cfg.d_vocab)
        return t

    def shapes(self, cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
        d, m, de = cfg.d_model, cfg.d_mlp, self._d_embed(cfg)
        s = {D + "embed_tokens.weight": (cfg.d_vocab, de), D + "embed_positions.weight": (cfg.n_ctx + OFFSET, d)}
        if de != d:
            s[D + "project_in.weight"], s[D + "project_out.weight"] = (d, de), (de, d)
        if cfg.final_norm:
            s[D + "final_layer_norm.weight"] = s[D + "final_layer_norm.bias"] = (d,)
        if not cfg.tied_embeddings:
            s["lm_head.weight"] = (cfg.d_vocab, de)
        for l in range(cfg.n_layers):
            h = f"{D}layers.{l}."
            for part in ("self_attn_layer_norm", "final_layer_norm"):
                s[h + part + ".weight"] = s[h + part + ".bias"] = (d,)
            for n in ("q", "k", "v", "out"):
                s[h + f"self_attn.{n}_proj.weight"] = (d, d)
                if cfg.qkv_bias:
                    s[h + f"self_attn.{n}_proj.bias"] = (d,)
            s[h + "fc1.weight"], s[h + "fc2.weight"] = (m, d), (d, m)
            if cfg.mlp_bias:
                s[h + "fc1.bias"], s[h + "fc2.bias"] = (m,), (d,)
        return s
