"""Harvesting ``blocks.3.hook_resid_post`` for 8x128 tokens on a gpt2-small-shaped model
(random weights): poslens vs Hugging Face ``output_hidden_states`` vs TransformerLens 4.x
``TransformerBridge.run_with_cache(names_filter=..., stop_at_layer=4)``, in one run.

Prints each time, the ratios (peer time / poslens time: > 1 means poslens is faster), the
share of this machine's float32 matmul roofline poslens reaches (the forward's FLOPs over
wall time, divided by a dense matmul's FLOP/s measured in the same run), and bfloat16's
speed and error against float32.

    pip install transformer-lens==4.3.0 "torch==2.13.0"   # the peer (not a poslens dependency)
    python benchmarks/bench_runner.py [--batch 8 --seq 128 --repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import environment, matmul_flops, native_bf16, timeit  # noqa: E402

from poslens.models import Runner, load_weights  # noqa: E402
from poslens.testing import gpt2_small_config, random_checkpoint  # noqa: E402

HOOK = "blocks.3.hook_resid_post"


def forward_flops(cfg, batch: int, seq: int, layers: int) -> float:
    """Multiply-adds x 2 of `layers` blocks: QKV, scores, pattern @ V, W_O, MLP in and out."""
    n, d, m = batch * seq, cfg.d_model, cfg.d_mlp
    dense = 2 * n * (3 * d * d + d * d + 2 * d * m)
    attn = 2 * 2 * batch * cfg.n_heads * seq * seq * cfg.d_head  # full square, as the kernels compute it
    return layers * (dense + attn)


def tokenizer_for_bridge(folder: Path):
    """GPT-2's tokenizer from the offline files, saved and reloaded so it has a name_or_path
    (built from a tokenizer.json: transformers 5 renamed vocab_file/merges_file, and given the
    old names it builds an empty tokenizer without a word)."""
    from transformers import GPT2TokenizerFast

    from poslens.models.tokenizer import Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    Tokenizer.gpt2().save(folder)
    GPT2TokenizerFast(tokenizer_file=str(folder / "tokenizer.json")).save_pretrained(folder)
    tok = GPT2TokenizerFast.from_pretrained(folder)
    assert tok.encode("Hello my name is Adam") == [15496, 616, 1438, 318, 7244], "GPT-2's tokenizer did not load"
    return tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = gpt2_small_config()
    tokens = torch.randint(0, cfg.d_vocab, (args.batch, args.seq))
    print(f"# {environment()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = random_checkpoint(Path(tmp) / "gpt2-small-random", cfg, seed=0)

        runner = Runner(load_weights(str(path)))
        ours = runner.run(tokens, hooks=[HOOK])[HOOK]
        t_ours = timeit(lambda: runner.run(tokens, hooks=[HOOK]), args.repeat)

        runner_bf16 = Runner(load_weights(str(path)), dtype="bfloat16")
        ours_bf16 = runner_bf16.run(tokens, hooks=[HOOK])[HOOK]
        # Emulated bfloat16 (no avx512_bf16/amx_bf16) is 50-120x slower: one timing says enough.
        t_bf16 = timeit(lambda: runner_bf16.run(tokens, hooks=[HOOK]), args.repeat if native_bf16() else 1)
        bf16_err = float((ours_bf16 - ours).abs().max() / ours.abs().max())
        bf16_rms = float((ours_bf16 - ours).pow(2).mean().sqrt() / ours.pow(2).mean().sqrt())

        from transformers import GPT2LMHeadModel

        hf = GPT2LMHeadModel.from_pretrained(path).eval()

        def hf_run():
            with torch.inference_mode():
                return hf(tokens, output_hidden_states=True).hidden_states[4]

        hf_out = hf_run()
        t_hf = timeit(hf_run, args.repeat)

        t_tl = tl_err = None
        try:
            from transformer_lens.model_bridge import TransformerBridge
        except ImportError:
            print("# TransformerLens not installed: pip install transformer-lens==4.3.0 'torch==2.13.0'")
        else:
            hf_eager = GPT2LMHeadModel.from_pretrained(path, attn_implementation="eager").eval()
            bridge = TransformerBridge.boot_transformers(str(path), hf_model=hf_eager, tokenizer=tokenizer_for_bridge(Path(tmp) / 'tok'),
                                                         device="cpu")

            def tl_run():
                with torch.inference_mode():
                    _, cache = bridge.run_with_cache(tokens, names_filter=HOOK, stop_at_layer=4)
                return cache[HOOK]

            tl_out = tl_run()
            t_tl = timeit(tl_run, args.repeat)
            tl_err = float((tl_out - ours).abs().max())

    flops = forward_flops(cfg, args.batch, args.seq, layers=4)
    peak = matmul_flops()
    print(f"harvest {HOOK} for {args.batch}x{args.seq} tokens, gpt2-small shape (random weights), median of {args.repeat}")
    print(f"poslens float32          {t_ours * 1e3:8.1f} ms   ({flops / t_ours / 1e9:.1f} GFLOP/s)")
    print(f"poslens bfloat16         {t_bf16 * 1e3:8.1f} ms   (max |err| / max |x| vs float32: {bf16_err:.2e}, rms rel {bf16_rms:.2e})")
    print(f"HF output_hidden_states  {t_hf * 1e3:8.1f} ms   (max |diff| vs poslens {float((hf_out - ours).abs().max()):.1e})")
    if t_tl is not None:
        print(f"TransformerLens bridge   {t_tl * 1e3:8.1f} ms   (max |diff| vs poslens {tl_err:.1e})")
    print(f"dense float32 matmul     {peak / 1e9:8.1f} GFLOP/s (roofline)")
    print("ratios (peer time / poslens time; > 1: poslens faster)")
    print(f"  vs HF output_hidden_states:        {t_hf / t_ours:6.2f}")
    if t_tl is not None:
        print(f"  vs TransformerLens (float32):      {t_tl / t_ours:6.2f}   target >= 1.0")
        print(f"  bfloat16 vs TransformerLens f32:   {t_tl / t_bf16:6.2f}   "
              + ("target >= 2.0" if native_bf16() else "(no target: this CPU emulates bfloat16)"))
    print(f"  roofline share (float32):          {flops / t_ours / peak:6.2f}   target >= 0.80")


if __name__ == "__main__":
    main()
