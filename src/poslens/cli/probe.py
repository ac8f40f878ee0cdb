"""`poslens probe`: word-index probes (emergent positional embeddings)."""

from __future__ import annotations

import click

from ..claims.attach import with_published
from ..analyses.word_index.options import Options
from .common import common, finish
from .options import build_options, options_flags


def _words(path: str | None) -> list[str] | None:
    if path is None:
        return None
    from ..data.sequences import read_corpus

    # an empty or binary file is named as such, not as a dictionary too small for the token lengths
    return read_corpus(path, what="word list").split()


@click.command("probe")
@common
@click.option("--schemes", default="word", show_default=True,
              help="Comma-separated reference schemes: word, sentence, list, code, or 'all'.")
@click.option("--words", type=click.Path(dir_okay=False), default=None,
              help="Word list file (one word per line) instead of wordfreq's.")
@click.option("--prefix", default=None,
              help="Text before the units (\\n for a newline; default: each scheme's own, the post's for word).")
@click.option("--label-token", type=click.Choice(["last", "first", "both"]), default="both", show_default=True,
              help="Probe the last token of each unit, the first, or both.")
@options_flags(Options, skip=("schemes", "prefix", "label_tokens"),
               aliases={"n_units": "-n", "prepend_bos": " /--no-bos"})
def probe_cmd(model, out, device, dtype, as_json, schemes, words, prefix, label_token, **kw):
    """Probe which word (sentence, list item, code line) each token is in, layer by layer, against baselines."""
    from ..analyses import word_index as WI
    from ..data.word_prompts import SCHEMES
    from ..models import load_weights

    names = tuple(s.strip() for s in schemes.split(",") if s.strip())
    opts = build_options(Options, kw, schemes=SCHEMES if names == ("all",) else names,
                         prefix=None if prefix is None else prefix.replace("\\n", "\n"),
                         label_tokens=("last", "first") if label_token == "both" else (label_token,))
    word_list = _words(words)
    w = load_weights(model)
    r = with_published(WI.word_index(w, opts, words=word_list, device=device, dtype=dtype), w)
    from ..viz.word_index import word_index_figures

    finish(r, out, "probe", as_json, WI.summarize(r), word_index_figures)
