"""The report's stages: one adapter per analysis module.

Each adapter says what the analysis needs from the checkpoint, which options it runs with
at each report size (``quick`` for a first look, ``default``, ``full`` = the seeds'
sizes), and how to call the analysis's compute, ``figures`` and ``summarize`` functions.
Analysis modules are imported inside the adapters, so ``poslens report --help`` stays fast.
"""

from __future__ import annotations

from .orchestrate import Stage

STAGES: list[Stage] = []
