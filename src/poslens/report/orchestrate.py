"""Run every analysis a checkpoint supports, once, in cached and resumable stages.

A report is a list of :class:`Stage` s. Each stage names what it needs from the checkpoint
(``needs``: tensors or capabilities such as ``"W_E"`` or ``"mlp"``), the options that key its
cache, the forward passes it wants (:class:`Harvest`), and a ``run(ctx, options) -> Result``.
:func:`run_model` opens the model once into a :class:`Context` (one lazy ``Weights``, one
``Runner``, one tokenizer), skips the stages the checkpoint cannot support and says why,
runs the forward passes the remaining stages share once per input set (the union of their
hooks), and stores each finished stage in ``OUT/cache/<stage>-<key>.json`` (written
atomically, checksummed), so an interrupted report resumes where it stopped and a changed
option recomputes only the stages whose key it changes.

>>> from poslens.report import run_model, default_stages        # doctest: +SKIP
>>> rep = run_model("tiny", "poslens-out/report", default_stages(), size="quick")  # doctest: +SKIP
>>> [(o.name, o.status) for o in rep.outcomes]                  # doctest: +SKIP
[('profile', 'done'), ('helix', 'done'), ...]
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..code_version import code_version
from ..harvest import Harvest, Harvester
from ..errors import CorpusError, InvalidInputError, NotApplicableError, PoslensError, suggest
from ..io import atomic_write_text, writable_dir
from ..options import implied_range, listed, within
from ..results import Result, canonical, to_jsonable

CACHE_FORMAT = "poslens-report-cache"
CACHE_VERSION = 1
SIZES = ("quick", "default", "full")


# ---- stages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One analysis in the report.

    ``run(ctx, options)`` returns a :class:`~poslens.results.Result`; ``options(ctx)`` the
    options it runs with for ``ctx.size`` (they key the cache and are shown on the page);
    ``needs`` capabilities (see :data:`CAPABILITIES`) or TransformerLens tensor names;
    ``supports(ctx)`` an extra reason to skip (or None); ``harvests(ctx, options)`` the
    forward passes it reads through ``ctx.activations(dataset)``; ``code`` the modules
    whose source is part of the cache key (an analysis that changes is recomputed);
    ``validates(**options)`` builds the analysis's Options from them (overrides included), so
    that its own checks (a scheme's name, a choice) run before any work starts.
    """

    name: str
    title: str
    run: Callable[[Context, dict], Result]
    needs: tuple[str, ...] = ()
    options: Callable[[Context], dict] | None = None
    harvests: Callable[[Context, dict], list[Harvest]] | None = None
    figures: Callable[[Result, Path], list[Path]] | None = None
    summarize: Callable[[Result], list[str]] | None = None
    supports: Callable[[Context], str | None] | None = None
    code: tuple[str, ...] = ()
    about: str = ""
    seed: str = ""
    final: bool = False  # runs after every other stage (reads their results through ctx.finished)
    validates: Callable[..., object] | None = None

    def options_for(self, ctx: Context, overrides: dict | None = None) -> dict:
        opts = dict(self.options(ctx) if self.options else {})
        for k, v in (overrides or {}).items():
            if k not in opts:
                raise InvalidInputError(
                    f"stage '{self.name}' has no option '{k}'{suggest(k, opts)}; "
                    f"its options are: {', '.join(sorted(opts)) or 'none'}"
                )
            opts[k] = check_option(self.name, k, opts[k], v)
        if overrides and self.validates is not None:
            try:
                self.validates(**opts)
            except InvalidInputError as exc:
                raise InvalidInputError(f"--set {self.name}: {exc}") from None
        return opts


# What an option whose default is None ("unset: the analysis chooses") takes once it is set, by
# the option's name; without this any JSON value reached the analysis and failed there, deep down.
_UNSET_LIKE = {"corpus": "", "prefix": "", "layers": [0], "neurons": [0], "key_layer": 0, "batch_size": 1,
               "period": 1.0, "curve_params": {"": -1.0}}  # -1.0: any finite number


def check_option(stage: str, key: str, default, value):
    """``value`` for ``stage.key`` if it has the default's type and a sensible range, else
    InvalidInputError: an int where the default is an int, a finite number where it is a float
    (each in the range :func:`poslens.options.implied_range` gives, as the flags take it), a bool for a
    bool, a string for a string, a list or JSON object of such for a list or object. An option whose default is None takes null
    or, where :data:`_UNSET_LIKE` names its type, a value of that type. A ``corpus`` must be a
    readable, non-empty text file.

    >>> check_option("helix", "n_components", 10, 5)
    5
    """
    if default is None:
        if value is None or key not in _UNSET_LIKE:
            return value
        value = _checked(stage, key, _UNSET_LIKE[key], value, shown=None)
    else:
        value = _checked(stage, key, default, value, shown=default)
    if key == "corpus" and value:
        _check_corpus(stage, key, value)
    return value


_READABLE_CORPORA: set[tuple] = set()  # (path, size, mtime) read once already: options are checked many times


def _check_corpus(stage: str, key: str, path: str) -> None:
    """Read a corpus given with --set whole while the options are checked, so a bad path is one
    up-front error whichever stage reads it, and whenever: the model profile reads dup_heads' corpus
    in the skip checks, sinks reads its own only when it runs, after the stages before it computed."""
    from ..data.sequences import read_corpus

    try:
        st = os.stat(os.path.expanduser(path))
        seen = (path, st.st_size, st.st_mtime_ns)
    except OSError:
        seen = None
    if seen is not None and seen in _READABLE_CORPORA:
        return
    try:
        read_corpus(path)
    except CorpusError as exc:
        raise CorpusError(f"--set {stage}.{key}={path}: {exc}") from None
    if seen is not None:
        _READABLE_CORPORA.add(seen)


def _json_or_text(text: str):
    """A --set value: JSON where it parses, else the text; a float keeps its text (a head "0.10")."""
    try:
        val = json.loads(text)
    except json.JSONDecodeError:
        return text
    if type(val) is float:
        val = _Number(val)
        val.text = text.strip()
    return val


def _checked(stage: str, key: str, default, value, shown):
    where = f"--set {stage}.{key}={json.dumps(value) if not isinstance(value, str) else value}"

    def bad(what: str):
        return InvalidInputError(f"{where}: {what} (the default is {json.dumps(to_jsonable(shown))})")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("expected true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("expected an integer")
        if (spec := implied_range(key, default)) and not within(value, spec):
            raise bad(f"must lie in {spec}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("expected a finite number")
        if (spec := implied_range(key, default)) and not within(value, spec):
            raise bad(f"must lie in {spec}")
        return float(value)
    if isinstance(default, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return getattr(value, "text", str(value))  # a head "0.10", a corpus "2024": text that reads as a number
        if not isinstance(value, str):
            raise bad("expected a string")
        return value
    if isinstance(default, (list, tuple)):
        if isinstance(value, str):  # the commands' own comma-separated form: word,sentence or 0,4,8
            value = [_json_or_text(x.strip()) for x in value.split(",") if x.strip()]
        if not isinstance(value, list):
            raise bad("expected a list: comma-separated or JSON, e.g. 1,2 or [1,2]")
        if default:
            return [_checked(stage, key, default[0], x, shown) for x in value]
        return value
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise bad("expected a JSON object, e.g. {\"a\": 1}")
        if default:
            like = next(iter(default.values()))
            return {k: _checked(stage, key, like, v, shown) for k, v in value.items()}
        return value
    return value


def lazy(module: str, name: str, package: str = "analyses") -> Callable:
    """``poslens.<package>.<module>.<name>``, imported on its first call, for a stage's ``summarize``,
    ``validates`` (an Options class) and (with ``package="viz"``) its ``figures``.

    Stage modules are imported whenever the report's stages are listed; importing an
    analysis (and its plotting) only when the stage runs keeps ``poslens report --help`` fast.
    The stage's ``code`` names the modules, so a change to them still recomputes the stage.

    >>> Stage("dup_heads", "Duplicate-token heads", run, summarize=lazy("heads", "summarize"))   # doctest: +SKIP
    """

    def call(*args, **kw):
        return getattr(importlib.import_module(f"poslens.{package}.{module}"), name)(*args, **kw)

    return call


# Capability -> (what it is called on the page, TL tensor names that must all be present).
def _cap_tensors(cap: str, n_layers: int) -> tuple[str, list[str]]:
    L = range(n_layers)
    attn = ("ln1.w", "ln1.b", *(f"attn.{a}" for a in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O")))
    mlp = ("ln2.w", "ln2.b", "mlp.W_in", "mlp.b_in", "mlp.W_out", "mlp.b_out")
    table = {
        # named as TransformerLens does: the reason goes on to list the family's own missing tensors
        "W_pos": ("the positional embedding W_pos", ["pos_embed.W_pos"]),
        "W_E": ("the token embedding W_E", ["embed.W_E"]),
        "W_U": ("the unembedding W_U and the final norm", ["unembed.W_U", "ln_final.w", "ln_final.b"]),
        "attn": ("every layer's attention and its norm", [f"blocks.{l}.{p}" for l in L for p in attn]),
        "attn0": ("layer 0's attention and its norm", [f"blocks.0.{p}" for p in attn]),
        "mlp": ("every layer's MLP and its norm", [f"blocks.{l}.{p}" for l in L for p in mlp]),
        "mlp0": ("layer 0's MLP and its norm", [f"blocks.0.{p}" for p in mlp]),
    }
    if cap == "tokens":  # token inputs through the whole model: Context.missing asks the family which tensors
        return "the token embedding and every layer", []
    return table.get(cap, (cap, [cap]))


# "W_pos" is a learned position table: on a rotary model a stage needing it is not applicable.
# "inputs": token inputs or positional inputs alone, whichever the checkpoint allows.
CAPABILITIES = ("W_pos", "W_E", "W_U", "attn", "attn0", "mlp", "mlp0", "tokens", "tokenizer", "inputs")


# ---- the context shared by the stages of one model ---------------------------------------


class Context:
    """One model opened once: lazy Weights, a Runner, the tokenizer, shared activations.

    ``memo(key, fn)`` shares any intermediate between stages (processed weights, prompt
    sets); ``activations(dataset)`` runs the planned forward pass for ``dataset`` on first
    use, with the union of every planned stage's hooks, and frees it after its last reader.
    """

    def __init__(self, spec: str, *, device: str = "cpu", dtype: str = "float32", size: str = "default", seed: int = 0):
        from ..models import load_weights

        if size not in SIZES:
            raise InvalidInputError(f"unknown size '{size}'; use one of {', '.join(SIZES)}")
        self.spec = str(spec)
        self.weights = load_weights(self.spec)  # random:SPEC included, the model's null
        self.ckpt = self.weights.source
        self.cfg = self.weights.cfg
        self.label = self.weights.label
        self.device, self.dtype, self.size, self.seed = device, dtype, size, seed
        self._runner = None
        self._tokenizer = None
        self._tokenizer_error: str | None = None
        self._memo: dict[Any, Any] = {}
        self.running: str | None = None  # the stage whose run is in progress
        self.booked: dict[str, float] = {}  # seconds of a stage's work done before it ran (see memo)
        self.harvester = Harvester(lambda: self.runner, owner=self)  # the shared forward passes
        # Read by stages that depend on others (the model profile): --set overrides of every
        # stage, finished stages' results (computed or cached), and whether to show progress.
        self.overrides: dict[str, dict] = {}
        self.finished: dict[str, dict] = {}
        self.progress = False
        self.png = False  # draw the PNG twin of every interactive figure too (see viz.common.deferred_png)

    def pick(self, quick, default, full=None):
        """The value for this report's size: ``ctx.pick(64, 256, 1024)``."""
        return {"quick": quick, "default": default, "full": default if full is None else full}[self.size]

    @property
    def runner(self):
        if self._runner is None:
            from ..models import Runner

            self._runner = Runner(self.weights, self.device, self.dtype)
        return self._runner

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from ..models.tokenizer import Tokenizer

            self._tokenizer = Tokenizer.for_checkpoint(self.ckpt)
        return self._tokenizer

    def memo(self, key, fn: Callable[[], Any], stage: str | None = None):
        """``fn()`` once per ``key``. ``stage`` owns the work: computed while another stage (or
        the skip checks before any) asked first, its seconds are booked to ``stage`` anyway."""
        if key not in self._memo:
            t0 = time.perf_counter()
            self._memo[key] = fn()
            if stage is not None and stage != self.running:
                self.booked[stage] = self.booked.get(stage, 0.0) + time.perf_counter() - t0
        return self._memo[key]

    # -- capability checks
    def missing(self, needs: Iterable[str]) -> str | None:
        """Why this model cannot serve ``needs`` (one sentence), or None."""
        for cap in needs:
            if cap == "tokenizer":
                if self._tokenizer_error is None:
                    try:
                        self.tokenizer
                        self._tokenizer_error = ""
                    except PoslensError as exc:
                        self._tokenizer_error = str(exc)
                if self._tokenizer_error:
                    return f"needs the model's tokenizer: {self._tokenizer_error}"
                continue
            if cap == "inputs":  # token inputs, or positional inputs alone from a learned table
                # where positions are learned, token inputs need W_pos too, so W_pos decides both
                learned = self.cfg.positional == "learned"
                if self.weights.has("pos_embed.W_pos" if learned else "embed.W_E"):
                    continue
                lacks = "the position table W_pos" if learned else "the token embedding W_E"
                return (f"needs token inputs (the token embedding W_E{' and W_pos' if learned else ''}) or positional "
                        f"inputs (a learned W_pos); {self.label} has neither: it lacks {lacks} "
                        f"({self.weights.stored_name('pos_embed.W_pos' if learned else 'embed.W_E')})")
            if cap == "W_pos" and self.cfg.positional != "learned":
                return (f"not applicable: {self.label} has {self.cfg.positional} positions ({self.cfg.model_type}), "
                        "no learned position table W_pos")
            what, names = _cap_tensors(cap, self.cfg.n_layers)
            if cap == "tokens":
                from ..models.weights import forward_tensors

                names = forward_tensors(self.weights)
            # A tensor the family does not have at all (a bias-free or final-norm-free design)
            # is not needed by it; only tensors the family has and the checkpoint lacks are.
            family = set(self.weights.names())
            lacking = [n for n in names if n in family and not self.weights.has(n)]
            if lacking:
                hf = sorted({self.weights.stored_name(n) or n for n in lacking})
                shown = ", ".join(hf[:3]) + (f" and {len(hf) - 3} more" if len(hf) > 3 else "")
                return f"needs {what}, which {self.label} does not have (missing {shown})"
        return None

    def activations(self, dataset: str):
        """The activations of the planned pass ``dataset`` (every planned hook; see :mod:`poslens.harvest`)."""
        return self.harvester.activations(dataset)


# ---- fingerprints and cache ------------------------------------------------------------


def model_fingerprint(ckpt, processing: Iterable[str] = ()) -> str:
    """Changes when the checkpoint's config or any of its files change (size or mtime), or the
    processing applied to its weights (a ``random:`` null model's draw)."""
    h = hashlib.sha256()
    h.update(json.dumps(list(processing)).encode() if processing else b"")
    h.update(json.dumps(ckpt.config.to_hf_dict(), sort_keys=True).encode())
    path = Path(ckpt.path)
    if path.is_dir():
        for f in sorted(path.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def code_fingerprint(modules: Iterable[str]) -> str:
    """A hash of the package version and the source of every poslens module ``modules``
    import, directly or not (:mod:`poslens.code_version`): a change anywhere below a stage
    (the Runner included) recomputes it, while a change elsewhere keeps its cache."""
    v = code_version(tuple(sorted(set(modules))))
    return hashlib.sha256(f"poslens {v['package']} {v['source_sha256']}".encode()).hexdigest()[:16]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CacheCorrupt(Exception):
    pass


def cache_key(stage: Stage, options: dict, ctx: Context) -> tuple[str, dict]:
    material = {
        "stage": stage.name,
        "options": to_jsonable(options),
        "model": model_fingerprint(ctx.ckpt, ctx.weights.processing),
        "code": code_fingerprint((*stage.code, stage.run.__module__)),
        "device": str(ctx.device),
        "dtype": ctx.dtype,
        "version": CACHE_VERSION,
    }
    return _sha(canonical(material).encode())[:16], material


def read_cache(path: Path) -> dict:
    """A verified cache entry; raises CacheCorrupt saying what is wrong with it."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheCorrupt(f"corrupt (unreadable: {type(exc).__name__}: {exc})") from None
    if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT or "body" not in entry:
        raise CacheCorrupt("corrupt (not a poslens report cache entry)")
    body = entry["body"]
    try:
        ok = entry.get("sha256") == _sha(canonical(body).encode())
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise CacheCorrupt("corrupt (checksum mismatch: the file was edited or damaged)")
    return body


def _figures_stale(body: dict, out: Path, png: bool) -> bool:
    """Whether a cached stage's figures must be drawn again: PNG twins wanted and not drawn, a
    figure file missing or changed, or the plotly.min.js its HTML figures load missing (the page links
    them; they opened blank). They are redrawn from the cached result, not recomputed."""
    figs = body["figures"]
    return (png and not body.get("png")) or any(
        not (out / f["path"]).is_file() or _sha((out / f["path"]).read_bytes()) != f["sha256"] for f in figs) or (
        any(f["path"].endswith(".html") for f in figs) and not (out / "figures" / "plotly.min.js").is_file())


def _draw(st: Stage, result, out: Path, key: str, png: bool) -> list[dict]:
    """``st``'s figures of ``result`` in their folder under ``out``: [{path (relative to ``out``), sha256}]."""
    from ..viz.common import deferred_png, shared_plotly

    fig_dir = out / "figures" / f"{st.name}-{key}"
    fig_dir.mkdir(parents=True, exist_ok=True)
    with deferred_png(keep_twins=png), shared_plotly(out / "figures" / "plotly.min.js", "../plotly.min.js"):
        figs = [Path(p) for p in (st.figures(result, fig_dir) if st.figures else [])]
    # Paths relative to the output dir, so the page and the cache survive moving it.
    rel = [Path(os.path.relpath(Path(f).resolve(), out.resolve())).as_posix() for f in figs]
    return [{"path": r, "sha256": _sha((out / r).read_bytes())} for r in rel if (out / r).is_file()]


def write_cache(path: Path, body: dict) -> None:
    # Keys keep their order (only the checksum is of the sorted form): figures redrawn from the
    # cached result iterate its dicts, and must draw them in the order the first drawing did.
    body = to_jsonable(body)
    atomic_write_text(path, json.dumps({"format": CACHE_FORMAT, "sha256": _sha(canonical(body).encode()), "body": body},
                                       allow_nan=False) + "\n")


# ---- running ---------------------------------------------------------------------------


def _redraw(st: Stage, body: dict, out: Path, path: Path, png: bool) -> dict:
    """``body`` with its figures drawn again from its result, and its cache entry rewritten;
    CacheCorrupt where the result cannot be read back (then the stage is recomputed)."""
    from ..analyses import load_result

    try:
        result = load_result(body["result"])
        figures = _draw(st, result, out, body["key"], png or body.get("png", False))
    except Exception as exc:  # an entry that cannot be drawn again is recomputed, as a damaged one is
        raise CacheCorrupt(f"not redrawable ({type(exc).__name__}: {exc})") from None
    body = {**body, "figures": figures, "png": png or body.get("png", False)}
    write_cache(path, body)
    return body


@dataclass
class Outcome:
    """What happened to one stage: done, cached, skipped (with reason) or failed (with error)."""

    name: str
    title: str
    status: str
    reason: str = ""
    options: dict = field(default_factory=dict)
    result: dict | None = None
    summary: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)  # paths relative to the output dir
    seconds: float = 0.0
    key: str = ""
    about: str = ""
    seed: str = ""

    def to_dict(self) -> dict:
        return to_jsonable(self.__dict__)


@dataclass
class ModelReport:
    model: str
    spec: str
    fingerprint: str
    config: dict
    size: str
    outcomes: list[Outcome]
    seconds: float
    passes: list[dict]
    out: Path
    error: str | None = None  # why the model could not be opened or analysed at all

    @classmethod
    def failed_to_open(cls, spec: str, out: Path, size: str, error: str) -> ModelReport:
        return cls(model=str(spec), spec=str(spec), fingerprint="", config={}, size=size, outcomes=[], seconds=0.0,
                   passes=[], out=out, error=error)

    def to_dict(self) -> dict:
        d = {
            "model": self.model, "spec": self.spec, "fingerprint": self.fingerprint, "config": self.config,
            "size": self.size, "seconds": round(self.seconds, 2), "forward_passes": self.passes,
            "stages": {o.name: o.to_dict() for o in self.outcomes},
        }
        if self.error is not None:
            d["error"] = self.error
        return d

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def select_stages(stages: Sequence[Stage], only: Iterable[str] = (), skip: Iterable[str] = ()) -> list[Stage]:
    """The stages left after ``--only`` / ``--skip`` (comma lists allowed); unknown names raise."""
    names = [s.name for s in stages]

    def parse(xs):
        out = [p.strip() for x in listed(xs) for p in str(x).split(",") if p.strip()]
        for n in out:
            if n not in names:
                raise InvalidInputError(f"no report stage named '{n}'{suggest(n, names)}; stages: {', '.join(names)}")
        return set(out)

    only = listed(only)
    only_s, skip_s = parse(only), parse(skip)
    if only and not only_s:  # "--only ," would otherwise run every stage
        raise InvalidInputError("--only names no stage; give stage names (--list shows them), or leave --only out")
    return [s for s in stages if (not only_s or s.name in only_s) and s.name not in skip_s]


class _Number(float):
    """A number from ``--set`` that keeps how it was written: for an option that takes text,
    "0.10" is head 10 of layer 0, not 0.1."""

    text: str


def parse_overrides(items: Iterable[str], stages: Sequence[Stage]) -> dict[str, dict]:
    """``["helix.n_components=5"]`` -> ``{"helix": {"n_components": 5}}`` (values parsed as JSON if they can be)."""
    names = [s.name for s in stages]
    out: dict[str, dict] = {}
    for item in items:
        lhs, eq, rhs = item.partition("=")
        stage, dot, key = lhs.strip().partition(".")
        if not eq or not dot or not key:
            raise InvalidInputError(f"--set '{item}' is not STAGE.OPTION=VALUE (e.g. helix.n_components=5)")
        if stage not in names:
            raise InvalidInputError(f"--set '{item}': no stage '{stage}'{suggest(stage, names)}")
        out.setdefault(stage, {})[key.strip()] = _json_or_text(rhs)
    return out


def _stderr(msg: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(msg, file=sys.stderr)


def run_model(
    spec: str,
    out: str | Path,
    stages: Sequence[Stage],
    *,
    size: str = "default",
    overrides: dict[str, dict] | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool = True,
    fail_fast: bool = False,
    ctx: Context | None = None,
    compute: Iterable[str] | None = None,
    png: bool = False,
) -> ModelReport:
    """Run ``stages`` on one model, reusing finished stages cached in ``out/cache``.

    Stages whose needs the checkpoint lacks are skipped with a reason; a stage that raises
    is recorded as failed (its error shown on the page) unless ``fail_fast``. Raises
    InvalidInputError when the model supports none of ``stages``. With ``compute`` (the
    names ``--only``/``--skip`` selected) only those stages run; the others appear only
    if their cache entry for the same options is there, so ``--only`` into an existing
    report keeps its other sections. ``ctx`` is a model already opened. ``png`` draws a PNG
    beside every interactive figure (otherwise only figures with no interactive twin get one);
    a cached stage's figures are drawn again from its cached result where they lack these PNGs
    or a figure file is missing or changed, so neither recomputes the stage.
    """
    from tqdm.auto import tqdm

    from ..progress import quiet

    with contextlib.nullcontext() if progress else quiet():  # --no-progress silences every inner bar too
        out = writable_dir(out, "the report")
        t_start = time.perf_counter()
        ctx = ctx or Context(spec, device=device, dtype=dtype, size=size)
        selected = set(compute) if compute is not None else {st.name for st in stages}
        overrides = overrides or {}
        ctx.overrides, ctx.progress, ctx.png = overrides, progress, png
        fp = model_fingerprint(ctx.ckpt, ctx.weights.processing)

        outcomes: dict[str, Outcome] = {}
        pending: list[tuple[Stage, dict, str, dict]] = []
        # Every option first: a bad --set is the user's to fix before the skip checks below compute anything.
        options = {st.name: st.options_for(ctx, overrides.get(st.name)) for st in stages}
        for st in stages:
            opts = options[st.name]
            base = dict(name=st.name, title=st.title, options=opts, about=st.about, seed=st.seed)
            why = ctx.missing(st.needs) or (st.supports(ctx) if st.supports else None)
            if why:
                if st.name in selected:
                    outcomes[st.name] = Outcome(status="skipped", reason=why, **base)
                continue
            key, _ = cache_key(st, opts, ctx)
            path = out / "cache" / f"{st.name}-{key}.json"
            if path.exists():
                try:
                    body = read_cache(path)
                    if st.figures and _figures_stale(body, out, ctx.png):
                        if progress:
                            _stderr(f"{st.name}: drawing its figures again from the cached result")
                        body = _redraw(st, body, out, path, ctx.png)
                    outcomes[st.name] = Outcome(
                        status="cached", result=body["result"], summary=body["summary"],
                        figures=[f["path"] for f in body["figures"]], seconds=body["seconds"], key=key, **base,
                    )
                    ctx.finished[st.name] = body["result"]
                    continue
                except CacheCorrupt as exc:
                    then = (f"recomputing {st.name}" if st.name in selected else
                            f"{st.name} is left out of this report (--only {st.name} computes it again)")
                    _stderr(f"poslens: cache entry {path} is {exc}; {then}")
                    path.unlink(missing_ok=True)
            if st.name in selected:
                pending.append((st, opts, key, base))

        if not pending and not any(o.status == "cached" for o in outcomes.values()):
            reasons = "; ".join(f"{o.name}: {o.reason}" for o in outcomes.values()) or "no stages selected"
            raise InvalidInputError(f"{ctx.label} supports none of the report's analyses ({reasons}); nothing to report")

        # Weight-only stages first; then stages grouped by the pass they read, so each pass is
        # run once and freed as soon as its last reader is done.
        harvests = {st.name: (st.harvests(ctx, opts) if st.harvests else []) for st, opts, _, _ in pending}
        for hs in harvests.values():
            ctx.harvester.plan(hs)
        pending.sort(key=lambda p: (p[0].final, bool(harvests[p[0].name]), sorted(h.dataset for h in harvests[p[0].name])))

        width = max((len(p[0].name) for p in pending), default=0)  # the bars line up
        # a log file (stderr not a terminal) gets a line as each stage starts and ends, not redrawn bars
        lines = progress and not sys.stderr.isatty()
        for i, (st, opts, key, base) in enumerate(pending):
            bar = tqdm(total=3, desc=f"{st.name:<{width}}", unit="step", leave=True, disable=not progress or lines,
                       file=sys.stderr, bar_format="{desc} {bar:20} {n_fmt}/{total_fmt} {postfix} [{elapsed}]")
            if lines:
                _stderr(f"{st.name:<{width}} ({i + 1}/{len(pending)}) ...")
            t0 = time.perf_counter()
            ctx.running = st.name
            try:
                bar.set_postfix_str("compute")
                result = st.run(ctx, opts)
                bar.update(1)
                bar.set_postfix_str("figures")
                figs = _draw(st, result, out, key, ctx.png)
                bar.update(1)
                bar.set_postfix_str("summary")
                summary = [str(s) for s in (st.summarize(result) if st.summarize else [])]
                bar.update(1)
            except KeyboardInterrupt:
                bar.close()
                raise
            except NotApplicableError as exc:  # a premise only the analysis itself can check
                bar.set_postfix_str("not applicable")
                bar.close()
                if lines:
                    _stderr(f"{st.name:<{width}} not applicable: {exc}")
                outcomes[st.name] = Outcome(status="skipped", reason=f"not applicable: {exc}", **base)
                continue
            except Exception as exc:  # one broken analysis must not sink the whole report
                bar.set_postfix_str("failed")
                bar.close()
                if fail_fast:
                    raise
                msg = str(exc) if isinstance(exc, PoslensError) else f"{type(exc).__name__}: {exc}"
                _stderr(f"poslens: stage {st.name} failed: {msg}")
                if not isinstance(exc, PoslensError):
                    _stderr("".join(traceback.format_exception(exc)[-3:]).rstrip())
                outcomes[st.name] = Outcome(status="failed", reason=msg, seconds=time.perf_counter() - t0, key=key, **base)
                continue
            finally:
                ctx.harvester.release(h.dataset for h in harvests[st.name])
            ctx.running = None
            seconds = time.perf_counter() - t0 + ctx.booked.pop(st.name, 0.0)
            result_d = result.to_dict() if isinstance(result, Result) else to_jsonable(result)
            body = {
                "stage": st.name, "key": key, "options": opts, "result": result_d, "summary": summary,
                "figures": figs, "png": ctx.png, "seconds": round(seconds, 3),
            }
            write_cache(out / "cache" / f"{st.name}-{key}.json", body)
            bar.set_postfix_str(f"done in {seconds:.1f}s")
            bar.close()
            if lines:
                _stderr(f"{st.name:<{width}} done in {seconds:.1f}s")
            outcomes[st.name] = Outcome(status="done", result=result_d, summary=summary,
                                        figures=[f["path"] for f in figs], seconds=seconds, key=key, **base)
            ctx.finished[st.name] = outcomes[st.name].result

        return ModelReport(
            model=ctx.label, spec=str(spec), fingerprint=fp, config=ctx.cfg.to_hf_dict(), size=size,
            outcomes=[outcomes[s.name] for s in stages if s.name in outcomes], seconds=time.perf_counter() - t_start,
            passes=ctx.harvester.passes, out=out,
        )
