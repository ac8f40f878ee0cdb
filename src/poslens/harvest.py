"""Forward passes shared by everything that reads the same inputs: one pass per dataset, with
the union of every reader's hooks, freed after its last reader.

A reader declares a :class:`Harvest` (a dataset name, how to build the Runner's input, the
hooks it reads); the :class:`Harvester` plans all of them first, runs each dataset's pass once
on first use, records what it ran, and drops the activations when the last reader releases
them. Runs stop after the deepest hooked layer and compute logits only if a reader hooks them
(that is the Runner's contract).

>>> h = Harvester(lambda: runner)                                                   # doctest: +SKIP
>>> h.plan([Harvest("zeros:64", lambda _: {"embed": torch.zeros(1, 64, d)}, ("blocks.0.attn.hook_pattern",)),
...         Harvest("zeros:64", lambda _: {"embed": torch.zeros(1, 64, d)}, ("blocks.1.hook_resid_post",))])  # doctest: +SKIP
>>> h.activations("zeros:64")["blocks.1.hook_resid_post"]    # one pass, both hooks   # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Harvest:
    """One forward pass a reader wants: an input set (named by ``dataset``) and hooks.

    Readers naming the same ``dataset`` share one pass whose hooks are the union of theirs;
    ``make_input(owner)`` returns the keyword arguments of :meth:`Runner.run` (``tokens=`` or
    ``embed=``, optionally ``batch_size=``), so it must be the same for every reader that
    names the dataset (put the sizes in the name: ``"repeats:n=64:len=50"``).
    """

    dataset: str
    make_input: Callable[[Any], dict]
    hooks: tuple[str, ...]


class Harvester:
    """Planned, shared forward passes over one Runner (built on first use by ``runner()``)."""

    def __init__(self, runner: Callable[[], Any], owner: Any = None):
        self._runner = runner
        self._owner = owner  # what make_input receives (the report passes its model context)
        self._plan: dict[str, tuple[Callable, set[str], int]] = {}
        self._acts: dict[str, Any] = {}
        self.passes: list[dict] = []  # the passes actually run: dataset, number of hooks, seconds

    def plan(self, harvests: Iterable[Harvest]) -> None:
        """Register readers; call it for every reader before the first :meth:`activations`."""
        for h in harvests:
            make, hooks, readers = self._plan.get(h.dataset, (h.make_input, set(), 0))
            self._plan[h.dataset] = (make, hooks | set(h.hooks), readers + 1)

    def hooks(self, dataset: str) -> set[str]:
        """The union of the hooks planned for ``dataset``."""
        return set(self._plan[dataset][1]) if dataset in self._plan else set()

    def activations(self, dataset: str):
        """The activations of the planned pass ``dataset`` (every planned hook), run on first use."""
        if dataset not in self._acts:
            if dataset not in self._plan:
                raise KeyError(f"no forward pass planned for '{dataset}' (declare it in the stage's harvests)")
            make, hooks, _ = self._plan[dataset]
            kwargs = dict(make(self._owner))
            runner = self._runner()
            t0 = time.perf_counter()
            order = {n: i for i, n in enumerate(runner.hook_names())}
            self._acts[dataset] = runner.run(hooks=sorted(hooks, key=lambda n: order.get(n, -1)), **kwargs)
            self.passes.append({"dataset": dataset, "hooks": len(hooks), "seconds": round(time.perf_counter() - t0, 3)})
        return self._acts[dataset]

    def release(self, datasets: Iterable[str]) -> None:
        """A reader of each of ``datasets`` is done; free a pass once it has no readers left."""
        for d in datasets:
            if d in self._plan:
                make, hooks, readers = self._plan[d]
                self._plan[d] = (make, hooks, readers - 1)
                if readers - 1 <= 0:
                    self._acts.pop(d, None)

    def held(self) -> list[str]:
        """The datasets whose activations are in memory now."""
        return list(self._acts)
