"""Builders for synthetic checkpoints with planted structure, for tests and examples.

Each builder writes a real checkpoint directory (config.json + model.safetensors) that
every poslens entry point loads like any other model.
"""

from .checkpoints import (
    gpt2_small_config,
    random_checkpoint,
    random_state_dict,
    small_config,
    write_checkpoint,
)

__all__ = ["gpt2_small_config", "random_checkpoint", "random_state_dict", "small_config", "write_checkpoint"]
