"""``poslens report`` end to end: the shipped organisms and a gpt2-small-shaped model.

Targets, on an idle 2-core machine: the report on ``tiny`` (and on ``tiny-attn``) in at
most 15 s each; on a gpt2-small-shaped model in at most 60 s. The gpt2-small-shaped checkpoint has random
weights (12 layers, 12 heads, d_model 768, GPT-2's tokenizer) written to a temporary
directory, so every stage runs at full size; its findings mean nothing, its times do.
Each run starts from an empty output directory (no cache), in a fresh Python process when
more than one model is run (as a user's first report pays the imports and warm-up), at the
default size unless ``--size`` says otherwise (the targets are for the default size), and
the wall time includes loading and writing the page. Each
run also prints the machine's float32 matmul speed and the time of a plain Python loop,
just before and after it: a shared machine's speed drifts by up to 2x between hours, so
a wall time is comparable only beside these gauges (and best, back to back with the code
it is compared with).

    python benchmarks/bench_report.py                 # both models
    python benchmarks/bench_report.py --only tiny     # just the default organism
    python benchmarks/bench_report.py --model DIR     # any checkpoint (e.g. an earlier organism), no target
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import environment, matmul_flops  # noqa: E402

TARGETS = {"tiny": 15.0, "tiny-attn": 15.0, "gpt2-small-shaped": 60.0}


def gpt2_small_shaped(path: Path) -> Path:
    from poslens.models.tokenizer import Tokenizer
    from poslens.testing import gpt2_small_config, random_state_dict, write_checkpoint

    cfg = gpt2_small_config()
    return write_checkpoint(path, cfg, random_state_dict(cfg, seed=0), tokenizer=Tokenizer.gpt2())


def python_speed() -> float:
    """Seconds for a plain Python loop: a gauge of the interpreter's speed beside the matmul's."""
    t0 = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - t0


def run(label: str, spec: str, out: Path, size: str, target: float | None = None) -> None:
    import torch  # noqa: F401  (loaded before the clock starts, as every figure in the notes was measured)

    from poslens.report import build_report

    before = (matmul_flops() / 1e9, python_speed())
    t0 = time.perf_counter()
    _, (rep,) = build_report([spec], out, size=size, progress=False)
    wall = time.perf_counter() - t0
    after = (matmul_flops() / 1e9, python_speed())
    print(f"{label}: {wall:6.1f} s wall ({rep.seconds:.1f} s in stages)" + (
        f", target < {target:.0f} s -> {'met' if wall < target else 'MISSED'}" if target else ""))
    # this machine's speed drifts by up to 2x between hours: a wall time is only comparable beside it
    print(f"    this machine before / after: float32 matmul {before[0]:.0f} / {after[0]:.0f} GFLOP/s, "
          f"a Python loop of 10M additions {before[1]:.2f} / {after[1]:.2f} s")
    width = max((len(o.name) for o in rep.outcomes), default=0)
    for o in rep.outcomes:
        extra = f"  ({o.reason[:90]})" if o.status != "done" else ""
        print(f"    {o.name:{width}s} {o.status:8s} {o.seconds:7.1f} s{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(TARGETS), help="run one model only")
    ap.add_argument("--size", default="default", choices=["quick", "default", "full"])
    ap.add_argument("--model", default=None, help="report on this model instead (a name or a checkpoint directory)")
    args = ap.parse_args()
    names = [n for n in TARGETS if args.only in (None, n)] if not args.model else []
    if len(names) > 1:
        # Imports and warm-up (scipy, matplotlib, scikit-learn, plotly: seconds) are paid once per
        # process: a second model in this one would be timed without them, unlike a user's report.
        for name in names:
            subprocess.run([sys.executable, __file__, "--only", name, "--size", args.size], check=True)
        return
    print(f"# {environment()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model:
            run(args.model, args.model, tmp / "model", args.size)
            return
        (name,) = names
        target = TARGETS[name] if args.size == "default" else None
        if target is None:
            print(f"# no target at --size {args.size}: the targets are for the default size")
        if name == "gpt2-small-shaped":
            run(name, str(gpt2_small_shaped(tmp / "g2s")), tmp / "g2s-report", args.size, target)
        else:
            run(name, name, tmp / name, args.size, target)


if __name__ == "__main__":
    main()
