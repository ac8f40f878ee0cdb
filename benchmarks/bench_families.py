"""Harvesting a middle layer's residual stream of a Llama-shaped model (SmolLM2-135M's shape,
random weights: 30 layers, d_model 576, 9 query / 3 key-value heads, SwiGLU 1536): poslens vs
Hugging Face ``output_hidden_states``, in one run, float32.

poslens runs layers 0..L/2 only and never computes the unembedding; transformers runs the
whole model to return its hidden states. Also times a shared 32-token prompt prefix run once
(``runner.prefix``) against recomputing it for every row.

    python benchmarks/bench_families.py [--batch 8 --seq 128 --repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import environment, timeit  # noqa: E402

from poslens.models import Runner, load_weights  # noqa: E402

SHAPE = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
             intermediate_size=1536, max_position_embeddings=2048, vocab_size=49152, tie_word_embeddings=True,
             rope_theta=100000.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(**SHAPE)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    layer = cfg.num_hidden_layers // 2
    hook = f"blocks.{layer - 1}.hook_resid_post"  # = HF hidden_states[layer]
    tokens = torch.randint(0, cfg.vocab_size, (args.batch, args.seq))
    print(f"# {environment()}")
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        runner = Runner(load_weights(tmp))
        ours = runner.run(tokens, hooks=[hook])[hook]
        t_ours = timeit(lambda: runner.run(tokens, hooks=[hook]), args.repeat)

        def hf_run():
            with torch.inference_mode():
                return hf(tokens, output_hidden_states=True).hidden_states[layer]

        hf_out = hf_run()
        t_hf = timeit(hf_run, args.repeat)

        P0 = 32
        prefix_ids = torch.randint(0, cfg.vocab_size, (P0,))
        suffixes = tokens[:, : args.seq - P0]
        full_in = torch.cat([prefix_ids.expand(args.batch, P0), suffixes], 1)
        t_full = timeit(lambda: runner.run(full_in, hooks=[hook]), args.repeat)
        # the prefix's own run is timed too: the figure is "prefix once + suffixes", not the suffixes alone
        t_prefix = timeit(lambda: runner.run(suffixes, prefix=runner.prefix(prefix_ids), hooks=[hook]), args.repeat)
        prefix = runner.prefix(prefix_ids)
        err_prefix = float((runner.run(suffixes, prefix=prefix, hooks=[hook])[hook]
                            - runner.run(full_in, hooks=[hook])[hook][:, P0:]).abs().max())

    print(f"harvest {hook} (= hidden_states[{layer}]) for {args.batch}x{args.seq} tokens, Llama shape "
          f"(SmolLM2-135M, random weights), float32, median of {args.repeat}")
    print(f"poslens                   {t_ours * 1e3:8.1f} ms")
    print(f"HF output_hidden_states   {t_hf * 1e3:8.1f} ms   (max |diff| vs poslens {float((hf_out - ours).abs().max()):.1e})")
    print(f"ratio (HF time / poslens time): {t_hf / t_ours:.2f}   target >= 2.0")
    print(f"shared {P0}-token prefix: full rows {t_full * 1e3:.1f} ms, prefix once + suffixes {t_prefix * 1e3:.1f} ms "
          f"({t_full / t_prefix:.2f}x; max |diff| {err_prefix:.1e})")


if __name__ == "__main__":
    main()
