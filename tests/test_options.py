"""Option values given from Python are checked against their field's type, in one place (poslens.options.checked):
whether given as keywords to an analysis (resolve) or to an Options class directly (options_class)."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import typing
from pathlib import Path

import numpy as np
import pytest

import poslens.analyses
from poslens.errors import InvalidInputError
from poslens.options import checked, resolve


def _options_classes():
    for m in pkgutil.iter_modules(poslens.analyses.__path__):
        if not m.ispkg:
            continue
        try:
            mod = importlib.import_module(f"poslens.analyses.{m.name}.options")
        except ModuleNotFoundError:
            continue
        for c in vars(mod).values():
            if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == mod.__name__:
                yield c


def test_a_value_of_the_wrong_type_names_the_option_the_value_and_the_type():
    from poslens.analyses.heads import duplicate_heads
    from poslens.analyses.helix import helix

    # had been a bare TypeError from the Options' own range check ('<' between str and int)
    with pytest.raises(InvalidInputError, match=r"^n_components must be an integer \(got '4'\)$"):
        helix("tiny", n_components="4")
    with pytest.raises(InvalidInputError, match=r"n_seq must be an integer \(got True\)"):
        duplicate_heads("tiny", n_seq=True)  # a bool is not a count
    with pytest.raises(InvalidInputError, match=r"n_seq must be an integer \(got None\)"):
        duplicate_heads("tiny", n_seq=None)
    with pytest.raises(InvalidInputError, match=r"threshold must be a number \(got '0.5'\)"):
        duplicate_heads("tiny", threshold="0.5")


def test_ints_for_floats_lists_or_tuples_for_sequences_and_none_where_optional_are_accepted():
    from poslens.analyses.heads import Options as Heads
    from poslens.analyses.helix import Options as Helix

    assert resolve(Helix, None, {"sinusoidal_base": 100, "start": None}, "helix").sinusoidal_base == 100
    assert resolve(Helix, None, {"n_components": np.int64(4)}, "helix").n_components == 4
    for layers in ([0, 1], (0, 1)):
        assert resolve(Heads, None, {"layers": layers}, "duplicate_heads").layers == (0, 1)
    assert resolve(Heads, None, {"layers": 1}, "duplicate_heads").layers == (1,)  # layers=0 is layer 0
    for heads in ([[0, 1]], ((0, 1),), [(0, 1)]):
        assert resolve(Heads, None, {"profile_heads": heads}, "duplicate_heads").profile_heads == heads
    assert resolve(Heads, None, {"corpus": Path("a.txt")}, "duplicate_heads").corpus == Path("a.txt")
    with pytest.raises(InvalidInputError, match=r"profile_heads must be a list of lists of 2 integers or None "
                                                r"\(got \[\[0\]\]\)"):
        resolve(Heads, None, {"profile_heads": [[0]]}, "duplicate_heads")
    with pytest.raises(InvalidInputError, match=r"layers must be a list of integers or None \(got \[0.5\]\)"):
        resolve(Heads, None, {"layers": [0.5]}, "duplicate_heads")


def test_unions_and_dicts_are_checked_arm_by_arm():
    from poslens.analyses.causal.options import WordIndexAblationOptions
    from poslens.analyses.geometry.options import SubspacesOptions
    from poslens.analyses.word_index import Options as WordIndex

    for C in ("auto", 0.5, 2):
        assert resolve(WordIndex, None, {"C": C}, "word_index").C == C
        assert resolve(WordIndexAblationOptions, None, {"C": C}, "word_index_ablation").C == C
    with pytest.raises(InvalidInputError, match=r"C must be a string or a number \(got \[1\]\)"):
        resolve(WordIndex, None, {"C": [1]}, "word_index")
    assert resolve(WordIndex, None, {"schemes": "list"}, "word_index").schemes == ("list",)
    assert resolve(SubspacesOptions, None, {"lengths": {"short": 15}}, "hidden_subspaces").lengths == {"short": 15}
    with pytest.raises(InvalidInputError, match=r"lengths must be a dict mapping strings to integers or None"):
        resolve(SubspacesOptions, None, {"lengths": {"short": "15"}}, "hidden_subspaces")


@pytest.mark.parametrize("cls", list(_options_classes()), ids=lambda c: f"{c.__module__.split('.')[2]}.{c.__name__}")
def test_every_options_default_fits_its_declared_type(cls):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = cls().__getattribute__(f.name)
        assert checked(f.name, default, hints[f.name]) == default, f.name


@pytest.mark.parametrize("cls", list(_options_classes()), ids=lambda c: f"{c.__module__.split('.')[2]}.{c.__name__}")
def test_every_options_class_checks_types_when_built_directly(cls):
    # the same one-line error as a keyword to the analysis, not a TypeError from a comparison in __post_init__
    for f in dataclasses.fields(cls):
        with pytest.raises(InvalidInputError, match=rf"^{f.name} must be .* \(got <object object at"):
            cls(**{f.name: object()})


def test_built_directly_a_list_becomes_a_tuple_and_the_options_stay_hashable():
    from poslens.analyses.heads import Options as Heads

    o = Heads(layers=[0, 1])
    assert o.layers == (0, 1) and hash(o) == hash(Heads(layers=(0, 1)))


@pytest.mark.parametrize("cls", list(_options_classes()), ids=lambda c: f"{c.__module__.split('.')[2]}.{c.__name__}")
def test_no_option_takes_nan_and_no_seed_is_negative(cls):
    # NaN passed every range check written as "if not lo <= x" and then meant nothing; a negative
    # seed reached numpy's generator, a ValueError from deep in the analysis (helix(w, seed=-1))
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if float in typing.get_args(hints[f.name]) + (hints[f.name],):
            with pytest.raises(InvalidInputError, match=r"(?i)\bnan\b"):
                cls(**{f.name: float("nan")})
        if f.name == "seed":
            with pytest.raises(InvalidInputError, match=r"^seed must lie in \[0, inf\); got -1$"):
                cls(seed=-1)


def test_helix_refuses_from_python_what_its_flags_refuse():
    from poslens.analyses.helix import helix

    # n_traces=-1 had traced every dimension but the last (a [:-1] slice)
    for bad in (dict(seed=-1), dict(token_sample=-1), dict(token_sample=0), dict(n_traces=-1), dict(cosine_size=0)):
        with pytest.raises(InvalidInputError, match=f"^{next(iter(bad))} must lie in"):
            helix("tiny", **bad)


@pytest.mark.parametrize("cls", list(_options_classes()), ids=lambda c: f"{c.__module__.split('.')[2]}.{c.__name__}")
def test_every_numeric_option_holds_one_range_from_python_the_cli_and_set(cls):
    # the ranges were inferred three times (the CLI's flags, the report's --set, the declared ones in
    # Options): heads(n_frequent=0) or group_threshold=1.5 ran from Python while the flags refused them
    from poslens.cli.options import _interval
    from poslens.options import field_range, implied_range
    from poslens.report.orchestrate import check_option

    for f in dataclasses.fields(cls):
        spec = field_range(f)
        if spec is None or isinstance(f.default, bool) or not isinstance(f.default, (int, float)):
            continue
        lo = float(spec[1:-1].split(",")[0])
        below = (lo if spec[0] == "(" else lo - 1) if isinstance(f.default, int) else np.nextafter(lo, -np.inf)
        if spec[0] == "(" and isinstance(f.default, float):
            below = lo
        with pytest.raises(InvalidInputError):  # in the range's words, or the class's own
            cls(**{f.name: type(f.default)(below)})
        kind = _interval(spec, integer=isinstance(f.default, int))
        with pytest.raises(Exception):
            kind.convert(type(f.default)(below), None, None)
        if "range" not in f.metadata:  # what --set checks for a stage option with this name and default
            with pytest.raises(InvalidInputError, match=re.escape(f"must lie in {spec}")):
                check_option("stage", f.name, f.default, type(f.default)(below))
            assert implied_range(f.name, f.default) == spec


def test_zero_is_taken_where_it_means_none():
    from poslens.analyses.causal.options import AblationOptions
    from poslens.analyses.neurons import Options as Neurons

    # no random baseline, no examples, no curves, no context: the analyses always took these from Python
    assert AblationOptions(n_baseline=0).n_baseline == 0
    assert Neurons(k_examples=0, max_curves=0, context_before=0, context_after=0).k_examples == 0
