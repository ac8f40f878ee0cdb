"""Writing checkpoint directories: the one writer the trainer, the hand-built models and the
test builders share.

A checkpoint is ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``), plus the
tokenizer when given: what poslens and ``transformers.GPT2LMHeadModel`` both load. Every
file is written atomically (a reader sees the old file or the complete new one).

>>> save_checkpoint("out/m", cfg, state_dict)                      # doctest: +SKIP
PosixPath('out/m')
>>> save_weights(load_weights("tiny"), "out/tiny-copy")             # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from ..errors import InvalidInputError
from ..io import atomic_write_text
from .config import ModelConfig

FORMATS = ("safetensors", "bin")


def save_checkpoint(
    path: str | Path,
    cfg: ModelConfig,
    state_dict: dict[str, torch.Tensor],
    *,
    fmt: str = "safetensors",
    prefix: bool = False,
    drop: tuple[str, ...] = (),
    tokenizer=None,
    dtype: torch.dtype | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``state_dict`` (Hugging Face names, e.g. ``wpe.weight``) and ``cfg`` as a checkpoint directory.

    ``fmt``: "safetensors" or "bin" (``pytorch_model.bin``); ``prefix`` adds GPT-2's
    ``transformer.`` prefix; ``drop`` leaves tensors out (a partial checkpoint); ``dtype``
    converts floating tensors (e.g. float16 snapshots); ``tokenizer`` (anything
    :func:`~poslens.models.tokenizer.as_tokenizer` takes) is saved beside the weights; ``metadata``
    goes into the safetensors header (e.g. the training step of a snapshot).
    """
    from .tokenizer import as_tokenizer

    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown checkpoint format '{fmt}'; use one of {', '.join(FORMATS)}")
    tokenizer = as_tokenizer(tokenizer, "save_checkpoint")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    sd = {}
    for k, v in state_dict.items():
        if k in drop:
            continue
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        sd[("transformer." if prefix and k != "lm_head.weight" else "") + k] = v.contiguous()
    name = "model.safetensors" if fmt == "safetensors" else "pytorch_model.bin"
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", suffix=".tmp", dir=path)
    os.close(fd)
    try:
        if fmt == "safetensors":
            from safetensors.torch import save_file

            save_file(sd, tmp, metadata={"format": "pt", **(metadata or {})})
        else:
            torch.save(sd, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path / name)
    finally:
        Path(tmp).unlink(missing_ok=True)
    atomic_write_text(path / "config.json", json.dumps(cfg.to_hf_dict(), indent=2))
    if tokenizer is not None:
        tokenizer.save(path)
    return path


def save_weights(weights, path: str | Path, **kw) -> Path:
    """Write (GPT-2) :class:`~poslens.models.weights.Weights` back as a checkpoint directory."""
    return save_checkpoint(path, weights.cfg, weights.to_hf_state_dict(), **kw)
