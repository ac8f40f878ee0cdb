"""Small random checkpoints of every family, written as local Hugging Face directories.

Each is built offline from a ``transformers`` config (so it is what ``from_pretrained``
would load), its parameters moved off their initial values (LayerNorm weights 1, biases 0
would hide folding mistakes), and saved with poslens's embedded ``tiny`` tokenizer so that
every text-reading analysis runs on it. The shapes are tiny but keep each family's
positional machinery: GPT-Neo's local attention, OPT's two-row position offset and
project_in/out, GPT-NeoX's partial rotary and parallel blocks, Llama's grouped-query
attention with SwiGLU and RMSNorm, Mistral's sliding window.

Needs ``transformers`` (a test dependency, not a run-time one).

>>> path = family_checkpoint(tmp_path / "neox", "gpt_neox")        # doctest: +SKIP
>>> load_weights(str(path)).cfg.rotary_dim                          # doctest: +SKIP
2
"""

from __future__ import annotations

from pathlib import Path

import torch

# The tokenizer every checkpoint ships: tiny's own BPE, so d_vocab is its size.
VOCAB = 4096

# family -> (transformers config class, kwargs). n_ctx 128 leaves room for --quick inputs.
FAMILY_CONFIGS: dict[str, tuple[str, dict]] = {
    "gpt_neo": ("GPTNeoConfig", dict(
        hidden_size=32, num_layers=2, num_heads=4, max_position_embeddings=128, vocab_size=VOCAB,
        attention_types=[[["global", "local"], 1]], window_size=8, intermediate_size=64)),
    "opt": ("OPTConfig", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64, max_position_embeddings=128,
        vocab_size=VOCAB, word_embed_proj_dim=16)),
    # OPT-350m's layout: post-LayerNorm blocks and no final norm
    "opt_post_ln": ("OPTConfig", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64, max_position_embeddings=128,
        vocab_size=VOCAB, word_embed_proj_dim=16, do_layer_norm_before=False)),
    "gpt_neox": ("GPTNeoXConfig", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=128, vocab_size=VOCAB, rotary_pct=0.25)),
    "llama": ("LlamaConfig", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
        max_position_embeddings=128, vocab_size=VOCAB)),
    "mistral": ("MistralConfig", dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
        max_position_embeddings=128, vocab_size=VOCAB, sliding_window=8)),
}


def _tiny_tokenizer():
    from ..models import load_weights
    from ..models.tokenizer import Tokenizer

    return Tokenizer.for_checkpoint(load_weights("tiny").source)


def hf_model(family: str, seed: int = 0, noise: float = 0.1):
    """The ``transformers`` model (eager attention, float32, eval mode) of ``family``."""
    import transformers

    cls_name, kw = FAMILY_CONFIGS[family]
    cfg = getattr(transformers, cls_name)(bos_token_id=0, eos_token_id=0, pad_token_id=None, **kw)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * noise)
    return model


def family_checkpoint(path: str | Path, family: str, seed: int = 0) -> Path:
    """Write a random ``family`` checkpoint (config.json, model.safetensors, tokenizer.json) to ``path``."""
    path = Path(path)
    hf_model(family, seed).save_pretrained(path)
    _tiny_tokenizer().save(path)
    return path


__all__ = ["FAMILY_CONFIGS", "VOCAB", "family_checkpoint", "hf_model"]
