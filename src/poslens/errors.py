"""User-facing errors.

Every error a user can cause is a :class:`PoslensError`; its message says what was wrong
and what to do. The CLI prints it on one line and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PoslensError(Exception):
    """Base class for errors caused by user input or the environment."""

    exit_code = 2


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C after which the work so far was saved: the message says where and how to resume.

    A KeyboardInterrupt still (code that stops on one stops on this), but the CLI prints its message
    instead of the generic line.
    """


class UnknownModelError(PoslensError):
    pass


class UnsupportedArchitectureError(PoslensError):
    pass


class MissingTensorError(PoslensError):
    """A tensor an analysis needs is not in the checkpoint."""

    def __init__(self, tensor: str, needed_for: str | None, source: str):
        self.tensor = tensor
        self.needed_for = needed_for
        self.source = source
        why = f" (needed for {needed_for})" if needed_for else ""
        super().__init__(
            f"tensor '{tensor}' is not in checkpoint {source}{why}; "
            "use a complete checkpoint or skip the analysis that needs it"
        )


class CorruptCheckpointError(PoslensError):
    pass


class OfflineError(PoslensError):
    pass


class InvalidInputError(PoslensError):
    """Bad tokens, lengths, layer or head indices, options."""


class NotApplicableError(InvalidInputError):
    """The analysis's premise is absent from this model (a W_pos analysis on a rotary model);
    the message says which premise and why."""


class AbsentTensorError(MissingTensorError, NotApplicableError):
    """A tensor the model's family does not have at all (a rotary model's W_pos): no checkpoint
    of it has one, so the analysis does not apply, and a complete checkpoint would not help."""

    def __init__(self, tensor: str, needed_for: str | None, source: str, lacks: str):
        self.tensor = tensor
        self.needed_for = needed_for
        self.source = source
        what = f"{source} has {lacks} ('{tensor}')"
        PoslensError.__init__(self, f"{needed_for} does not apply: {what}" if needed_for else what)


class UnknownHookError(InvalidInputError):
    pass


class CorpusError(InvalidInputError):
    pass


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """A ' (did you mean ...?)' suffix naming the closest choices, or ''."""
    choices = list(choices)
    by_lower: dict[str, list[str]] = {}
    for c in choices:
        by_lower.setdefault(c.lower(), []).append(c)
    # Case-insensitive first: 'W_q' should suggest 'W_Q' before 'W_V'.
    close = [c for low in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.5) for c in by_lower[low]]
    return " (did you mean " + ", ".join(repr(c) for c in close[:n]) + "?)" if close else ""
