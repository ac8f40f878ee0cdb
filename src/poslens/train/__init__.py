"""Train GPT-2-architecture models on text files: ``poslens train`` / ``python -m poslens.train``."""

from .config import TrainConfig
from .loop import train

__all__ = ["TrainConfig", "train"]
