"""Llama-style models (Llama, Mistral, Qwen2, SmolLM): rotary with the rotate-half pairing,
RMSNorm, SwiGLU, grouped-query attention; Mistral's sliding window, Qwen2's QKV biases.

Key and value weights are expanded over the query heads that share them (TransformerLens's
convention), so ``W_K[l, h]`` is the key head query head ``h`` reads."""

from __future__ import annotations

from typing import Any

from ..config import ModelConfig
from .base import Family, Src, grouped, linear_in, linear_out, mlp, need, per_head, read, rope, same, stored_or_zeros, zeros

P = "model."


class Llama(Family):
    name = "llama"
    model_types = ("llama", "mistral", "qwen2")
    prefixes = (P,)
    description = "Llama-style (Llama, Mistral, Qwen2, SmolLM): rotary, RMSNorm, SwiGLU, grouped-query attention"

    def config(self, hf: dict[str, Any], source: str) -> ModelConfig:
        kind = hf.get("model_type")
        d, H = int(need(hf, "hidden_size", source, kind)), int(need(hf, "num_attention_heads", source, kind))
        n_layers = int(need(hf, "num_hidden_layers", source, kind))
        d_head = int(hf.get("head_dim") or d // H)
        rotary_dim, base = rope(hf, source, d_head, 1.0, ("partial_rotary_factor",), ("rope_theta",))
        window, local = hf.get("sliding_window"), None
        if kind == "llama" or (kind == "qwen2" and not hf.get("use_sliding_window", False)):
            window = None
        if window is not None and kind == "qwen2":
            types = hf.get("layer_types") or ["sliding_attention" if i >= int(hf.get("max_window_layers", 28))
                                              else "full_attention" for i in range(n_layers)]
            local = tuple(i for i, t in enumerate(types) if t == "sliding_attention")
            window = window if local else None
        qkv_bias = kind == "qwen2" or bool(hf.get("attention_bias", False))
        return ModelConfig(
            family=self.name, n_layers=n_layers, n_heads=H, d_model=d,
            n_ctx=int(need(hf, "max_position_embeddings", source, kind)), d_vocab=int(need(hf, "vocab_size", source, kind)),
            d_mlp=int(need(hf, "intermediate_size", source, kind)), act_fn=hf.get("hidden_act", "silu"),
            eps=float(read(hf, ("rms_norm_eps",), source, "RMSNorm epsilon", 1e-6)), normalization="RMS",
            positional="rotary", rotary_dim=rotary_dim, rotary_base=base,
            n_key_value_heads=int(hf.get("num_key_value_heads") or H), window=int(window) if window else None,
            local_layers=local, head_dim=d_head if d_head != d // H else None, gated_mlp=True,
            tied_embeddings=bool(hf.get("tie_word_embeddings", False)), qkv_bias=qkv_bias,
            out_bias=kind != "qwen2" and bool(hf.get("attention_bias", False)), mlp_bias=bool(hf.get("mlp_bias", False)),
            bos_token_id=hf.get("bos_token_id"), hf_config=dict(hf),
        )

    def tensors(self, cfg: ModelConfig) -> dict[str, Src]:
        H, G, dh, d, m = cfg.n_heads, cfg.n_key_value_heads, cfg.d_head, cfg.d_model, cfg.d_mlp
        g = H // G
        t = {"embed.W_E": Src((P + "embed_tokens.weight",), same)}
        for l in range(cfg.n_layers):
            p, h = f"blocks.{l}.", f"{P}layers.{l}."
            t[p + "ln1.w"], t[p + "ln1.b"] = Src((h + "input_layernorm.weight",), same), zeros(d)
            t[p + "attn.W_Q"] = Src((h + "self_attn.q_proj.weight",), linear_in(H, dh))
            t[p + "attn.W_K"] = Src((h + "self_attn.k_proj.weight",), grouped(linear_in(G, dh), g))
            t[p + "attn.W_V"] = Src((h + "self_attn.v_proj.weight",), grouped(linear_in(G, dh), g))
            t[p + "attn.b_Q"] = stored_or_zeros(cfg.qkv_bias, h + "self_attn.q_proj.bias", per_head(H, dh), H, dh)
            for x, n in (("K", "k"), ("V", "v")):
                t[p + f"attn.b_{x}"] = stored_or_zeros(cfg.qkv_bias, h + f"self_attn.{n}_proj.bias",
                                                       grouped(per_head(G, dh), g), H, dh)
            t[p + "attn.W_O"] = Src((h + "self_attn.o_proj.weight",), linear_out(H, dh))
            t[p + "attn.b_O"] = stored_or_zeros(cfg.out_bias, h + "self_attn.o_proj.bias", same, d)
            t[p + "ln2.w"], t[p + "ln2.b"] = Src((h + "post_attention_layernorm.weight",), same), zeros(d)
            t[p + "mlp.W_gate"] = Src((h + "mlp.gate_proj.weight",), lambda w: w.T)
            t[p + "mlp.b_gate"] = stored_or_zeros(cfg.mlp_bias, h + "mlp.gate_proj.bias", same, m)
            mlp(t, p + "mlp", h + "mlp.up_proj", h + "mlp.down_proj", cfg, lambda w: w.T, cfg.mlp_bias)
        t["ln_final.w"], t["ln_final.b"] = Src((P + "norm.weight",), same), zeros(d)
        t["unembed.W_U"] = Src((P + "embed_tokens.weight",) if cfg.tied_embeddings else ("lm_head.weight",), lambda w: w.T)
        t["unembed.b_U"] = zeros(cfg.d_vocab)
        return t

    def shapes(self, cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
        H, G, dh, d, m = cfg.n_heads, cfg.n_key_value_heads, cfg.d_head, cfg.d_model, cfg.d_mlp
        s = {P + "embed_tokens.weight": (cfg.d_vocab, d), P + "norm.weight": (d,)}
        if not cfg.tied_embeddings:
            s["lm_head.weight"] = (cfg.d_vocab, d)
        for l in range(cfg.n_layers):
            h = f"{P}layers.{l}."
            s[h + "input_layernorm.weight"] = s[h + "post_attention_layernorm.weight"] = (d,)
            s.update({h + "self_attn.q_proj.weight": (H * dh, d), h + "self_attn.k_proj.weight": (G * dh, d),
                      h + "self_attn.v_proj.weight": (G * dh, d), h + "self_attn.o_proj.weight": (d, H * dh)})
            if cfg.qkv_bias:
                s.update({h + "self_attn.q_proj.bias": (H * dh,), h + "self_attn.k_proj.bias": (G * dh,),
                          h + "self_attn.v_proj.bias": (G * dh,)})
            if cfg.out_bias:
                s[h + "self_attn.o_proj.bias"] = (d,)
            for n, shape in (("gate", (m, d)), ("up", (m, d)), ("down", (d, m))):
                s[h + f"mlp.{n}_proj.weight"] = shape
                if cfg.mlp_bias:
                    s[h + f"mlp.{n}_proj.bias"] = (shape[0],)
        return s
