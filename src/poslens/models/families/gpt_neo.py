"""GPT-Neo: learned positions, alternating global / local (windowed) attention, unscaled
scores, separate q/k/v projections without biases, nn.Linear layout [out, in]."""

from __future__ import annotations

from typing import Any

from ...errors import CorruptCheckpointError
from ..config import ModelConfig
from .base import Family, Src, layer_norm, linear_in, linear_out, mlp, need, same, zeros


class GPTNeo(Family):
    name = "gpt_neo"
    model_types = ("gpt_neo",)
    prefixes = ("transformer.",)
    description = "GPT-Neo: learned positions, global/local attention (window), no 1/sqrt(d) scaling"

    def config(self, hf: dict[str, Any], source: str) -> ModelConfig:
        n_layers = int(need(hf, "num_layers", source, "GPT-Neo"))
        kinds = hf.get("attention_layers")
        if not kinds:
            kinds = [k for pattern, n in hf.get("attention_types") or [[["global", "local"], n_layers // 2]]
                     for _ in range(n) for k in pattern]
        if len(kinds) != n_layers or set(kinds) - {"global", "local"}:
            raise CorruptCheckpointError(f"{source}: attention_layers {kinds} do not give 'global'/'local' per layer")
        local = tuple(i for i, k in enumerate(kinds) if k == "local")
        return ModelConfig(
            family=self.name, n_layers=n_layers, n_heads=int(need(hf, "num_heads", source, "GPT-Neo")),
            d_model=int(need(hf, "hidden_size", source, "GPT-Neo")),
            n_ctx=int(hf.get("max_position_embeddings", 2048)), d_vocab=int(need(hf, "vocab_size", source, "GPT-Neo")),
            d_mlp=int(hf["intermediate_size"]) if hf.get("intermediate_size") else None,
            act_fn=hf.get("activation_function", "gelu_new"), eps=float(hf.get("layer_norm_epsilon", 1e-5)),
            scale_attn_weights=False, window=int(hf.get("window_size", 256)) if local else None,
            local_layers=local, qkv_bias=False, tied_embeddings=bool(hf.get("tie_word_embeddings", True)),
            bos_token_id=hf.get("bos_token_id"), hf_config=dict(hf),
        )

    def tensors(self, cfg: ModelConfig) -> dict[str, Src]:
        H, dh = cfg.n_heads, cfg.d_head
        t = {"embed.W_E": Src(("wte.weight",), same), "pos_embed.W_pos": Src(("wpe.weight",), same)}
        for l in range(cfg.n_layers):
            p, h = f"blocks.{l}.", f"h.{l}."
            layer_norm(t, p + "ln1", h + "ln_1")
            for x, n in zip("QKV", "qkv"):
                t[p + f"attn.W_{x}"] = Src((h + f"attn.attention.{n}_proj.weight",), linear_in(H, dh))
            for x in "QKV":
                t[p + f"attn.b_{x}"] = zeros(H, dh)
            t[p + "attn.W_O"] = Src((h + "attn.attention.out_proj.weight",), linear_out(H, dh))
            t[p + "attn.b_O"] = Src((h + "attn.attention.out_proj.bias",), same)
            layer_norm(t, p + "ln2", h + "ln_2")
            mlp(t, p + "mlp", h + "mlp.c_fc", h + "mlp.c_proj", cfg, lambda w: w.T)
        layer_norm(t, "ln_final", "ln_f")
        t["unembed.W_U"] = Src(("wte.weight",) if cfg.tied_embeddings else ("lm_head.weight",), lambda w: w.T)
        t["unembed.b_U"] = zeros(cfg.d_vocab)
        return t

    def shapes(self, cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
        d, m = cfg.d_model, cfg.d_mlp
        s = {"wte.weight": (cfg.d_vocab, d), "wpe.weight": (cfg.n_ctx, d), "ln_f.weight": (d,), "ln_f.bias": (d,)}
        if not cfg.tied_embeddings:
            s["lm_head.weight"] = (cfg.d_vocab, d)
        for l in range(cfg.n_layers):
            h = f"h.{l}."
            for part in ("ln_1", "ln_2"):
                s[h + part + ".weight"] = s[h + part + ".bias"] = (d,)
            for n in "qkv":
                s[h + f"attn.attention.{n}_proj.weight"] = (d, d)
            s.update({h + "attn.attention.out_proj.weight": (d, d), h + "attn.attention.out_proj.bias": (d,),
                      h + "mlp.c_fc.weight": (m, d), h + "mlp.c_fc.bias": (m,),
                      h + "mlp.c_proj.weight": (d, m), h + "mlp.c_proj.bias": (d,)})
        return s
