"""Shared fixtures: the real partial GPT-2 small checkpoint and one small random checkpoint.

The partial checkpoint lives outside the repository (``../shared/data/gpt2-small-partial``
relative to the repo root) and is never copied in; tests that need it are skipped with a
reason where it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from poslens.testing import random_checkpoint, small_config

REPO_ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread per xdist worker, torch's and the BLAS numpy and scipy call: on 2 cores two
    # workers of two threads each only contend.
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)

# Under pytest-xdist every file runs on one worker (--dist loadfile), and files are handed out
# in collection order as workers free up (--no-loadscope-reorder): the longest go first so the
# workers finish together instead of one running the browser checks alone at the end. Ordered
# by the seconds each file took on 2 cores (``pytest --durations=0``, summed per file); files
# not named keep their order after these.
LONGEST_FIRST = ("test_report_browser.py", "test_report_partial_gpt2.py", "test_sweep_ray.py", "test_report.py",
                 "test_word_index.py", "test_viz_axes.py", "test_helix.py", "test_families_analyses.py", "test_sweep.py",
                 "test_spectra.py",
                 "test_train.py", "test_twisted_pair.py", "test_causal_questions.py", "test_runner.py",
                 "test_duplicate_neurons.py", "test_subspaces.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order



@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def partial_ckpt(shared_dir) -> Path:
    """Real GPT-2 small: W_pos, attention and LayerNorm weights, tokenizer; no wte, no MLP."""
    path = shared_dir / "data" / "gpt2-small-partial"
    if not (path / "config.json").is_file():
        pytest.skip(f"real partial checkpoint not found at {path}")
    return path


@pytest.fixture(scope="session")
def small_cfg():
    return small_config()


@pytest.fixture(scope="session")
def small_ckpt(tmp_path_factory, small_cfg) -> Path:
    """A complete random 2-layer GPT-2 (d_model 64, vocab 512) written as safetensors. Read-only."""
    return random_checkpoint(tmp_path_factory.mktemp("small") / "model", small_cfg, seed=0)
