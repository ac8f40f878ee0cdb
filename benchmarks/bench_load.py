"""Reading W_pos alone from a gpt2-xl-shaped safetensors checkpoint (1.56B parameters,
6.2 GB in float32, as the hub stores it) vs loading the whole model with transformers.

Both read the same file from the page cache (it was just written), so the ratio measures
the work each does, not the disk. Also times poslens's first forward-pass-free analysis
entry point (``load_weights(...).W_pos``) in a fresh process, imports included.

    python benchmarks/bench_load.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import environment, timeit  # noqa: E402

from poslens.models import load_weights  # noqa: E402
from poslens.models.config import ModelConfig  # noqa: E402


def write_xl(path: Path) -> Path:
    """A gpt2-xl-shaped checkpoint with random float32 weights, written tensor by tensor."""
    from safetensors.torch import save_file

    cfg = ModelConfig(n_layers=48, n_heads=25, d_model=1600, n_ctx=1024, d_vocab=50257)
    path.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    d, m = cfg.d_model, cfg.d_mlp

    def r(*shape):
        return torch.empty(*shape).normal_(0, 0.02, generator=g)

    sd = {"wte.weight": r(cfg.d_vocab, d), "wpe.weight": r(cfg.n_ctx, d), "ln_f.weight": torch.ones(d), "ln_f.bias": torch.zeros(d)}
    for l in range(cfg.n_layers):
        p = f"h.{l}."
        sd.update({p + "ln_1.weight": torch.ones(d), p + "ln_1.bias": torch.zeros(d),
                   p + "attn.c_attn.weight": r(d, 3 * d), p + "attn.c_attn.bias": torch.zeros(3 * d),
                   p + "attn.c_proj.weight": r(d, d), p + "attn.c_proj.bias": torch.zeros(d),
                   p + "ln_2.weight": torch.ones(d), p + "ln_2.bias": torch.zeros(d),
                   p + "mlp.c_fc.weight": r(d, m), p + "mlp.c_fc.bias": torch.zeros(m),
                   p + "mlp.c_proj.weight": r(m, d), p + "mlp.c_proj.bias": torch.zeros(d)})
    save_file(sd, str(path / "model.safetensors"), metadata={"format": "pt"})
    import json

    (path / "config.json").write_text(json.dumps(cfg.to_hf_dict()))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", type=Path, default=None, help="Write (or reuse) the checkpoint here instead of a temp dir.")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"# {environment()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "gpt2-xl-shaped"
        if not (path / "model.safetensors").is_file():
            t0 = time.perf_counter()
            write_xl(path)
            print(f"# wrote {path / 'model.safetensors'} ({(path / 'model.safetensors').stat().st_size / 1e9:.2f} GB) "
                  f"in {time.perf_counter() - t0:.0f} s")

        def ours():
            w = load_weights(str(path))
            return w.W_pos

        W = ours()
        t_ours = timeit(ours, args.repeat)
        cmd = [sys.executable, "-c", f"import time; t=time.perf_counter(); from poslens import load_weights; "
               f"load_weights({str(path)!r}).W_pos; print(time.perf_counter()-t)"]
        t_cold = float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])

        from transformers import GPT2LMHeadModel

        def theirs():
            model = GPT2LMHeadModel.from_pretrained(path)
            return model.transformer.wpe.weight

        W_hf = theirs()
        t_hf = timeit(theirs, args.repeat, warmup=0)
        assert torch.equal(W, W_hf.detach())
    print("W_pos [1024, 1600] from a gpt2-xl-shaped checkpoint (6.2 GB), page cache warm")
    print(f"poslens load_weights(dir).W_pos       {t_ours * 1e3:9.1f} ms")
    print(f"  same, fresh process incl. imports   {t_cold * 1e3:9.1f} ms")
    print(f"transformers from_pretrained (whole)  {t_hf * 1e3:9.1f} ms")
    print(f"ratio (transformers / poslens):       {t_hf / t_ours:9.0f}x   target >= 50x")


if __name__ == "__main__":
    main()
