"""Progress bars that a caller can silence.

tqdm reads ``TQDM_DISABLE`` once, when it is imported, so setting the variable later (as a
sweep worker must, after its imports) does nothing. Every poslens bar goes through
:func:`bar`, and :func:`quiet` turns them all off for the current thread of work.

    >>> from poslens.progress import bar, quiet
    >>> with quiet():
    ...     sum(bar(range(3), desc="inner"))
    3
"""

from __future__ import annotations

import contextvars
import sys
from contextlib import contextmanager

_QUIET = contextvars.ContextVar("poslens_progress_quiet", default=False)


def bar(iterable=None, **kwargs):
    """A ``tqdm.auto`` bar, disabled inside :func:`quiet`; a transient one (``leave=False``) shows
    only on a terminal: a log file would keep every redraw of a bar a terminal erases."""
    from tqdm.auto import tqdm

    transient_off = kwargs.get("leave") is False and not getattr(kwargs.get("file") or sys.stderr, "isatty", bool)()
    kwargs["disable"] = bool(kwargs.get("disable")) or _QUIET.get() or transient_off
    return tqdm(iterable, **kwargs)


@contextmanager
def quiet():
    """Silence every :func:`bar` opened in this block (the sweep shows one bar over its cells)."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)
