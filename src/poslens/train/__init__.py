"""Train GPT-2-architecture models on text files: ``poslens train`` / ``python -m poslens.train``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

if TYPE_CHECKING:
    from .config import TrainConfig
    from .loop import train

__getattr__ = exports(__name__, {".config": ("TrainConfig",), ".loop": ("train",)})

__all__ = ["TrainConfig", "train"]
