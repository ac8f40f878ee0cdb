"""GPT-NeoX / Pythia: partial rotary (25% of each head by default), parallel attention and
MLP, a fused query_key_value laid out per head as [q | k | v], untied unembedding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import ModelConfig
from .base import Family, Src, layer_norm, linear_out, mlp, need, rope, same, stored_or_zeros, zeros

P = "gpt_neox."


class GPTNeoX(Family):
    name = "gpt_neox"
    model_types = ("gpt_neox",)
    prefixes = (P,)
    description = "GPT-NeoX / Pythia: partial rotary, parallel attention + MLP, untied unembedding"

    def config(self, hf: dict[str, Any], source: str) -> ModelConfig:
        d, H = int(need(hf, "hidden_size", source, "GPT-NeoX")), int(need(hf, "num_attention_heads", source, "GPT-NeoX"))
        rotary_dim, base = rope(hf, source, d // H, 0.25, ("rotary_pct", "partial_rotary_factor"),
                                ("rotary_emb_base", "rope_theta"))
        bias = bool(hf.get("attention_bias", True))
        return ModelConfig(
            family=self.name, n_layers=int(need(hf, "num_hidden_layers", source, "GPT-NeoX")), n_heads=H, d_model=d,
            n_ctx=int(hf.get("max_position_embeddings", 2048)), d_vocab=int(need(hf, "vocab_size", source, "GPT-NeoX")),
            d_mlp=int(need(hf, "intermediate_size", source, "GPT-NeoX")), act_fn=hf.get("hidden_act", "gelu"),
            eps=float(hf.get("layer_norm_eps", 1e-5)), positional="rotary", rotary_dim=rotary_dim, rotary_base=base,
            parallel_attn_mlp=bool(hf.get("use_parallel_residual", True)), qkv_bias=bias, out_bias=bias,
            tied_embeddings=bool(hf.get("tie_word_embeddings", False)), bos_token_id=hf.get("bos_token_id"),
            hf_config=dict(hf),
        )

    def tensors(self, cfg: ModelConfig) -> dict[str, Src]:
        H, dh, d = cfg.n_heads, cfg.d_head, cfg.d_model
        t = {"embed.W_E": Src((P + "embed_in.weight",), same)}
        for l in range(cfg.n_layers):
            p, h = f"blocks.{l}.", f"{P}layers.{l}."
            layer_norm(t, p + "ln1", h + "input_layernorm")
            for i, x in enumerate("QKV"):
                # rows of query_key_value are [head, (q|k|v), d_head]
                t[p + f"attn.W_{x}"] = Src((h + "attention.query_key_value.weight",),
                                           lambda w, i=i: w.view(H, 3, dh, d)[:, i].transpose(1, 2).contiguous())
            for i, x in enumerate("QKV"):
                t[p + f"attn.b_{x}"] = stored_or_zeros(cfg.qkv_bias, h + "attention.query_key_value.bias",
                                                       lambda b, i=i: b.view(H, 3, dh)[:, i].contiguous(), H, dh)
            t[p + "attn.W_O"] = Src((h + "attention.dense.weight",), linear_out(H, dh))
            t[p + "attn.b_O"] = stored_or_zeros(cfg.out_bias, h + "attention.dense.bias", same, d)
            layer_norm(t, p + "ln2", h + "post_attention_layernorm")
            mlp(t, p + "mlp", h + "mlp.dense_h_to_4h", h + "mlp.dense_4h_to_h", cfg, lambda w: w.T)
        layer_norm(t, "ln_final", P + "final_layer_norm")
        t["unembed.W_U"] = Src((P + "embed_in.weight",) if cfg.tied_embeddings else ("embed_out.weight",), lambda w: w.T)
        t["unembed.b_U"] = zeros(cfg.d_vocab)
        return t

    def stored(self, name: str, present: Callable[[str], bool]) -> str:
        # transformers 5 keeps an untied unembedding in memory as lm_head (and still saves it as embed_out)
        if name == "embed_out.weight" and not present(name) and present("lm_head.weight"):
            return "lm_head.weight"
        return super().stored(name, present)

    def shapes(self, cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
        d, m = cfg.d_model, cfg.d_mlp
        s = {P + "embed_in.weight": (cfg.d_vocab, d), P + "final_layer_norm.weight": (d,), P + "final_layer_norm.bias": (d,)}
        if not cfg.tied_embeddings:
            s["embed_out.weight"] = (cfg.d_vocab, d)
        for l in range(cfg.n_layers):
            h = f"{P}layers.{l}."
            for part in ("input_layernorm", "post_attention_layernorm"):
                s[h + part + ".weight"] = s[h + part + ".bias"] = (d,)
            s[h + "attention.query_key_value.weight"] = (3 * d, d)
            s[h + "attention.dense.weight"] = (d, d)
            if cfg.qkv_bias:
                s[h + "attention.query_key_value.bias"], s[h + "attention.dense.bias"] = (3 * d,), (d,)
            s.update({h + "mlp.dense_h_to_4h.weight": (m, d), h + "mlp.dense_h_to_4h.bias": (m,),
                      h + "mlp.dense_4h_to_h.weight": (d, m), h + "mlp.dense_4h_to_h.bias": (d,)})
        return s
