"""How far a checkpoint can be run: which layers' attention and which residual points a forward pass reaches.

A partial checkpoint (GPT-2 small without ``wte`` and MLP matrices) runs layer 0's
attention on positional inputs and stops at its MLP. Rather than list tensor names per
family, one two-token pass with read-only edits records what was reached before the first
missing tensor, so the answer holds for every family the Runner supports.

>>> r = reach(Runner(load_weights("../shared/data/gpt2-small-partial")), "embed")   # doctest: +SKIP
>>> r.attention_layers, r.resid_points                                               # doctest: +SKIP
((0,), (0,))
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import InvalidInputError, MissingTensorError, PoslensError


def as_runner(model, what: str):
    """``model`` if it is a Runner; Weights, or a model name or checkpoint directory, get a float32
    CPU Runner of their own (so ``what("tiny")`` works as the other analyses' calls do); anything
    else is refused in words."""
    from ..models.runner import Runner
    from ..models.weights import Weights, as_weights

    if isinstance(model, Runner):
        return model
    if not isinstance(model, Weights) and not isinstance(model, (str, os.PathLike)):
        raise InvalidInputError(f"{what} takes a Runner, the model's Weights, a model name or a checkpoint "
                                f"directory; got {type(model).__name__}")
    return Runner(as_weights(model, what))


def runner_for(weights, runner, what: str, device: str = "cpu", dtype: str = "float32"):
    """``runner`` (shared prepared weights) if it runs ``weights``, a new Runner when None. A Runner of
    another model, or of these weights processed otherwise, would measure that one under this one's
    name, so it is refused."""
    from ..models.runner import Runner

    if runner is None:
        return Runner(weights, device=device, dtype=dtype)
    if not isinstance(runner, Runner):
        raise InvalidInputError(f"{what}'s runner= takes a Runner of the model; got {type(runner).__name__}")
    theirs = runner.weights
    if theirs is not weights and (theirs.label, theirs.processing) != (weights.label, weights.processing):
        said = lambda w: w.label + (f" ({', '.join(w.processing)})" if w.processing else "")  # noqa: E731
        raise InvalidInputError(f"{what}'s runner= runs {said(theirs)}, not {said(weights)}; give Runner(weights) "
                                "of the model analysed, or leave runner= out")
    return runner


def own_tokenizer(weights):
    """The checkpoint's own tokenizer, or None where it has no usable one (the caller falls back to
    inputs that need none, such as random tokens).

    >>> own_tokenizer(load_weights("tiny")).bos_token_id   # doctest: +SKIP
    """
    from ..models.tokenizer import Tokenizer

    try:
        return Tokenizer.for_checkpoint(weights.source)
    except PoslensError:
        return None


@dataclass(frozen=True)
class Reach:
    inputs: str  # "tokens" or "embed" (positional inputs alone)
    attention_layers: tuple[int, ...]  # layers whose attention pattern can be computed
    resid_points: tuple[int, ...]  # residual points 0..n_layers (point L enters block L; n_layers is after the last)
    stopped: str = ""  # why the pass stopped early ("" when it ran through)

    @property
    def complete(self) -> bool:
        return not self.stopped


def reach(runner, inputs: str = "tokens") -> Reach:
    """Run two positions of ``inputs`` ("tokens" or "embed") as far as the checkpoint allows."""
    cfg = runner.cfg
    L = cfg.n_layers
    seen: list[str] = []

    def note(x, hook):
        seen.append(hook.name)

    names = [f"blocks.{l}.{h}" for l in range(L) for h in ("hook_resid_pre", "attn.hook_pattern")]
    names.append(f"blocks.{L - 1}.hook_resid_post")
    x = {"tokens": torch.zeros(1, 2, dtype=torch.long)} if inputs == "tokens" else {"embed": torch.zeros(1, 2, cfg.d_model)}
    stopped = ""
    try:
        runner.run(**x, edits={n: note for n in names})
    except MissingTensorError as exc:
        stopped = str(exc)
    attn = tuple(l for l in range(L) if f"blocks.{l}.attn.hook_pattern" in seen)
    points = [l for l in range(L) if f"blocks.{l}.hook_resid_pre" in seen]
    if f"blocks.{L - 1}.hook_resid_post" in seen:
        points.append(L)
    return Reach(inputs, attn, tuple(points), stopped)
