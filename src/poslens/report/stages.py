"""The report's stages: one adapter module per analysis, ``poslens.report.stage_<name>``.

Each adapter module defines ``STAGES`` (a list of :class:`~poslens.report.orchestrate.Stage`):
what the analysis needs from the checkpoint, the options it runs with at each report size
(``quick`` for a first look, ``default``, ``full`` = the seeds' sizes), the forward passes it
shares (:class:`~poslens.report.orchestrate.Harvest`), and how to call the analysis's
compute, ``figures`` and ``summarize`` functions. Analysis modules are imported inside the
adapters' functions, so ``poslens report --help`` stays fast.

>>> [s.name for s in STAGES][:4]
['profile', 'helix', 'dup_heads', 'dup_neurons']
"""

from __future__ import annotations

import importlib

from .orchestrate import Stage

# Adapter modules, in the order their sections appear on the page.
ADAPTERS: tuple[str, ...] = ("profile", "helix", "duplicate", "word_index", "geometry", "twisted_pair", "causal", "positional", "verdicts")


STAGES: list[Stage] = [st for name in ADAPTERS for st in importlib.import_module(f"poslens.report.stage_{name}").STAGES]
