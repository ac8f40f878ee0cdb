"""Loading the embedded ``tiny`` model and running a forward pass over 256 tokens (logits
included), in a fresh process: what a user waits for the first time. Target: under 2 s on
2 cores. Also the steady-state forward time.

    python benchmarks/bench_tiny.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import environment, timeit  # noqa: E402

SCRIPT = """
import time
t0 = time.perf_counter()
import torch
from poslens import Runner, load_weights
t_import = time.perf_counter()
w = load_weights("tiny")
r = Runner(w)
tokens = torch.randint(0, w.cfg.d_vocab, (1, 256), generator=torch.Generator().manual_seed(0))
logits = r.run(tokens, logits=True).logits
t_end = time.perf_counter()
print(t_import - t0, t_end - t_import)
"""


def main() -> None:
    # no options: parsed so that --help describes the script instead of running it
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    print(f"# {environment()}")
    runs = [subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True) for _ in range(3)]
    times = sorted((tuple(map(float, r.stdout.split())) for r in runs), key=sum)
    imp, work = times[1]
    from poslens import Runner, load_weights
    import torch

    w = load_weights("tiny")
    r = Runner(w)
    tokens = torch.randint(0, w.cfg.d_vocab, (1, 256))
    steady = timeit(lambda: r.run(tokens, logits=True), repeat=10)
    print("tiny: load + forward over 256 tokens with logits, fresh process (median of 3)")
    print(f"  import torch + poslens       {imp:7.3f} s")
    print(f"  load tiny + forward          {work:7.3f} s")
    print(f"  total                        {imp + work:7.3f} s   target < 2 s: {'met' if imp + work < 2 else 'MISSED'}")
    print(f"  steady-state forward         {steady * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
