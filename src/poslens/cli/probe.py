"""`poslens probe`: word-index probes (emergent positional embeddings)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidInputError
from .common import common, emit, out_dir, parse_ints


def _ints(spec: str | None, what: str) -> list[int] | None:
    """None for a missing or blank spec (a blank --layers means every layer)."""
    return parse_ints(spec, what, example="1,2,3") if spec is not None and spec.strip() else None


def _schemes(spec: str) -> list[str]:
    from ..data.word_prompts import SCHEMES

    names = [s.strip() for s in spec.split(",") if s.strip()]
    return list(SCHEMES) if names == ["all"] else names


def _words(path: str | None) -> list[str] | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"word list {p} does not exist; give a text file with one word per line")
    return p.read_text(encoding="utf-8", errors="replace").split()


@click.command("probe")
@common
@click.option("--layers", default=None,
              help="Residual points to probe, comma-separated, 0..n_layers (0 = embeddings, L = entering block L, "
                   "n_layers = after the last block). Default: all.")
@click.option("--schemes", default="word", show_default=True,
              help="Comma-separated reference schemes: word, sentence, list, code, or 'all'.")
@click.option("--n-units", "-n", default=7, show_default=True, help="Units (words, items ...) per prompt, N >= 2.")
@click.option("--lengths", default="1,2,3", show_default=True,
              help="Token lengths of the words (under the model's tokenizer).")
@click.option("--dictionary-size", default=20000, show_default=True,
              help="Most frequent English words considered (wordfreq).")
@click.option("--words", type=click.Path(dir_okay=False), default=None,
              help="Word list file (one word per line) instead of wordfreq's.")
@click.option("--train-fraction", default=0.8, show_default=True,
              help="Share of each length's words used for training prompts.")
@click.option("--n-train", default=10000, show_default=True, help="Training points (labelled tokens).")
@click.option("--n-val-prompts", default=2560, show_default=True, help="Validation prompts (N points each).")
@click.option("--prefix", default=None,
              help="Text before the units (\\n for a newline; default: each scheme's own, the post's for word).")
@click.option("--no-bos", is_flag=True, help="Do not prepend BOS.")
@click.option("--label-token", type=click.Choice(["last", "first", "both"]), default="both", show_default=True,
              help="Probe the last token of each unit, the first, or both.")
@click.option("--C", "C", default="auto", show_default=True,
              help="Inverse L2 regularisation of the probes, or 'auto' (chosen per probe on held-out training prompts).")
@click.option("--max-iter", default=1000, show_default=True, help="lbfgs iterations per probe fit.")
@click.option("--balance-min", default=10, show_default=True,
              help="Points a (position, index) cell needs to enter the position-balanced evaluation.")
@click.option("--combined", is_flag=True,
              help="Also probe the residual together with the one-hot position and space features.")
@click.option("--key-layer", default=None, type=int,
              help="Residual point of the key plot and findings (default: a third of the depth).")
@click.option("--batch-size", default=64, show_default=True, help="Prompts per forward batch.")
@click.option("--seed", default=0, show_default=True)
def probe_cmd(model, out, device, dtype, as_json, layers, schemes, n_units, lengths, dictionary_size, words,
              train_fraction, n_train, n_val_prompts, prefix, no_bos, label_token, C, max_iter, balance_min, combined,
              key_layer, batch_size, seed):
    """Probe which word (sentence, list item, code line) each token is in, layer by layer, against baselines."""
    from ..analyses import word_index as WI
    from ..models import load_weights

    lens = _ints(lengths, "--lengths")
    if not lens:
        raise InvalidInputError("--lengths is empty; give token lengths such as 1,2,3")
    word_list = _words(words)
    w = load_weights(model)
    r = WI.word_index(
        w, layers=_ints(layers, "--layers"), schemes=_schemes(schemes), n_units=n_units, lengths=lens,
        dictionary_size=dictionary_size, words=word_list, train_fraction=train_fraction, n_train=n_train,
        n_val_prompts=n_val_prompts, prefix=None if prefix is None else prefix.replace("\\n", "\n"),
        prepend_bos=not no_bos, label_tokens=("last", "first") if label_token == "both" else (label_token,),
        C=C, max_iter=max_iter, balance_min=balance_min, combined=combined, key_layer=key_layer,
        batch_size=batch_size, seed=seed, device=device, dtype=dtype,
    )
    d = out_dir(out, "probe")
    from ..viz.word_index import word_index_figures

    figs = word_index_figures(r, d)
    emit(r, d, as_json, "\n".join(WI.summarize(r)), figs)
