"""`poslens sweep` at scale: bytes read from remote checkpoints, and the local pool against serial.

1. **Bytes.** ``--n`` (default 100) checkpoints of ``tiny``'s shape (today 3 layers, d_model 96,
   n_ctx 256, vocab 1,024, where W_pos alone is 5.3% of a file; random weights) are written in the hub's layout
   (``pytorch_model.bin``, a ``torch.save`` zip) and served over the loopback address by a
   hub stand-in that counts every byte it sends. A helix sweep over all of them reads W_pos
   by range requests; the benchmark prints the bytes sent against the bytes of the files
   (what downloading them would cost), and the floor set by W_pos itself. Target: <= 1%.
   It also does the same for ``--n-gpt2`` (default 10) gpt2-small-shaped checkpoints (one
   498 MB file, hard-linked under each revision: identical bytes, so the sweep flags them).
2. **Speed.** ``--cells`` CPU-bound cells (heads + in-context loss on tiny-shaped
   checkpoints, ``--n-seq`` sequences each) computed by the serial executor and by the
   local pool with 2 workers, each from an empty store. Target: >= 1.7x on 2 cores. The
   pool's fixed cost is its forkserver importing torch once (about 2.5 s here), so a short
   grid gains less: on an idle 2-core machine 24 cells gave 1.59x, 64 cells 1.87x.

Every sweep starts from an empty output directory and empty caches, also under ``--keep``
(which keeps only the written checkpoints): a sweep resumes from its store, so a rerun into
the same directory would compute nothing and read no bytes.

    python benchmarks/bench_sweep.py [--n 100] [--n-gpt2 10] [--cells 64] [--n-seq 48] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import environment  # noqa: E402

from poslens.models import load_weights  # noqa: E402
from poslens.testing import random_state_dict, write_checkpoint  # noqa: E402
from poslens.testing.checkpoints import gpt2_small_config  # noqa: E402
from poslens.testing.hub import FakeHub  # noqa: E402


def _serve_through(hub: FakeHub, tmp: Path) -> None:
    """Point huggingface_hub (and poslens's reachability check) at the stand-in, caches in ``tmp``."""
    from huggingface_hub import constants

    from poslens.models import registry

    constants.ENDPOINT = hub.endpoint
    constants.HUGGINGFACE_CO_URL_TEMPLATE = hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    constants.HF_HUB_CACHE = str(tmp / "hf")
    constants.HF_HUB_OFFLINE = False
    registry._REACHABLE.clear()
    os.environ["POSLENS_CACHE"] = str(tmp / "poslens-cache")


def _fresh(*dirs: Path) -> None:
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def _computed_all(res: dict, label: str) -> None:
    """A cell taken from the store, or one that failed, reads no bytes and costs no time: the
    figures would flatter the sweep."""
    run, bad = res["run"], [c for c in res["cells"] if c["status"] != "ok"]
    assert run["cached"] == 0 and run["computed"] == run["cells"] and not bad, \
        f"{label}: {run['cached']} cells from the store, {len(bad)} not ok ({bad[:1]}): nothing to measure"


def bytes_benchmark(root: Path, repo: str, revs: list[str], label: str) -> None:
    from poslens.sweep import sweep

    files = [root / repo / r / "pytorch_model.bin" for r in revs]
    whole = sum(f.stat().st_size for f in files)
    cfg = load_weights(str(files[0].parent)).cfg
    w_pos = cfg.n_ctx * cfg.d_model * 4 * len(revs)
    out, cache = root.parent / f"out-{label}", root.parent / f"cache-{label}"
    _fresh(out, cache)
    with FakeHub(root) as hub:
        _serve_through(hub, cache)
        t = time.perf_counter()
        res = sweep([repo], steps=revs, out=out, analyses=["helix"], executor="serial", progress=False, page=False)
        dt = time.perf_counter() - t
        sent, n_req = hub.bytes_sent, len(hub.requests)
    _computed_all(res, label)
    ranged = sent  # every tensor byte came by a range request; config.json etc. are in `sent` too
    ok = sum(c["status"] == "ok" for c in res["cells"])
    flagged = sum(1 for v in res["flags"].get(repo, {}).values() if any("identical" in x for x in v))
    print(f"{label}: {len(revs)} checkpoints, {ok} cells ok, {dt:.1f} s, {n_req} requests")
    print(f"  bytes sent {ranged:,} of {whole:,} in the files = {ranged / whole:.3%} "
          f"(target <= 1%); W_pos alone is {w_pos / whole:.3%} of the files")
    print(f"  per checkpoint: {ranged / len(revs):,.0f} bytes, of which W_pos {w_pos / len(revs):,.0f} and "
          f"directory + pickle + config {(ranged - w_pos) / len(revs):,.0f}; revisions flagged identical: {flagged}")


def speed_benchmark(tmp: Path, n_cells: int, n_seq: int) -> None:
    from poslens.sweep import sweep

    cfg = load_weights("tiny").cfg
    n_ckpt = max(1, n_cells // 2)
    run = tmp / "speed-run"
    for i in range(n_ckpt):
        write_checkpoint(run / f"checkpoint-{i}", cfg, random_state_dict(cfg, seed=i))
    sets = {"heads": {"n_seq": n_seq}, "icl": {"n_seq": n_seq}}
    times = {}
    for executor, jobs in (("serial", None), ("local", 2)):
        out = tmp / f"speed-{executor}"
        _fresh(out)
        t = time.perf_counter()
        res = sweep([str(run)], out=out, analyses=["heads", "icl"], overrides=sets, executor=executor, jobs=jobs,
                    progress=False, page=False)
        times[executor] = time.perf_counter() - t
        _computed_all(res, f"speed ({executor})")
    same = all((tmp / "speed-serial" / "tables" / f).read_bytes() == (tmp / "speed-local" / "tables" / f).read_bytes()
               for f in os.listdir(tmp / "speed-serial" / "tables"))
    print(f"speed: {2 * n_ckpt} cells (heads + icl, {n_seq} x 128 tokens, tiny shape): serial {times['serial']:.1f} s, "
          f"local pool of 2 {times['local']:.1f} s = {times['serial'] / times['local']:.2f}x (target >= 1.7x); "
          f"tables byte-identical: {same}")
    try:
        print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    except OSError:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--n-gpt2", type=int, default=10)
    ap.add_argument("--cells", type=int, default=64)
    ap.add_argument("--n-seq", type=int, default=48)
    ap.add_argument("--skip", default="", help="comma list of bytes, gpt2, speed to skip")
    ap.add_argument("--keep", default=None, help="work in this directory and keep it")
    a = ap.parse_args()
    skip = set(a.skip.split(","))
    tmp = Path(a.keep or tempfile.mkdtemp(prefix="bench-sweep-"))
    print(environment())
    try:
        if "bytes" not in skip:
            cfg = load_weights("tiny").cfg
            root = tmp / "hub"
            revs = [f"checkpoint-{i * 10}" for i in range(a.n)]
            t = time.perf_counter()
            for i, r in enumerate(revs):
                if not (root / "o" / "tiny-run" / r / "pytorch_model.bin").is_file():
                    write_checkpoint(root / "o" / "tiny-run" / r, cfg, random_state_dict(cfg, seed=i), fmt="bin",
                                     prefix=True)
            print(f"wrote {a.n} tiny-shaped .bin checkpoints in {time.perf_counter() - t:.1f} s")
            bytes_benchmark(root, "o/tiny-run", revs, "tiny-shaped")
        if "gpt2" not in skip and a.n_gpt2:
            cfg = gpt2_small_config()
            root = tmp / "hub2"
            revs = [f"checkpoint-{i}" for i in range(a.n_gpt2)]
            first = root / "o" / "gpt2-run" / revs[0]
            if not (first / "pytorch_model.bin").is_file():
                write_checkpoint(first, cfg, random_state_dict(cfg, seed=0), fmt="bin", prefix=True)
            for r in revs[1:]:
                d = root / "o" / "gpt2-run" / r
                d.mkdir(parents=True, exist_ok=True)
                for f in first.iterdir():
                    if not (d / f.name).exists():
                        os.link(f, d / f.name)
            bytes_benchmark(root, "o/gpt2-run", revs, "gpt2-small-shaped")
        if "speed" not in skip:
            speed_benchmark(tmp, a.cells, a.n_seq)
    finally:
        if a.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
