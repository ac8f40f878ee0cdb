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
