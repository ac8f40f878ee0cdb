"""Report stage: the verdict table, one row per mechanism, read from the other sections.

Runs after every other stage (``Stage.final``) and reads their results through
``ctx.finished``; it measures nothing itself. Each row is *present*, *weak*, *absent* or
*not testable here*, with the deciding number, its threshold (an option of this stage or
of the section it reads, e.g. the model profile's) and a one-line reason. A score between
``weak_fraction`` × threshold and the threshold is *weak*. The stage's cache key includes
the cache keys of the sections it reads, so a recomputed section recomputes the verdicts.

>>> from poslens.report.stage_verdicts import STAGES
>>> [s.name for s in STAGES]
['verdicts']
"""

from __future__ import annotations

import hashlib

from .orchestrate import Stage, cache_key

PRESENT, WEAK, ABSENT, UNTESTABLE = "present", "weak", "absent", "not testable here"

# mechanism key, name on the page, the section it links to
MECHANISMS = (
    ("helix", "W_pos helix", "helix"),
    ("previous_token", "Previous-token heads", "profile"),
    ("duplicate_token", "Duplicate-token heads", "profile"),
    ("induction", "Induction heads", "profile"),
    ("positional_neurons", "Positional neurons (PVO of a duplicate-token head)", "dup_neurons"),
    ("twisted_pair", "Twisted-pair distance read-out", "twisted_pair"),
    ("word_index", "Emergent word index", "word_index"),
    ("sink", "Attention sink on the first position", "profile"),
)
INPUTS = ("profile", "helix", "dup_neurons", "twisted_pair", "word_index", "sinks", "attention_sinks")


def _options(ctx) -> dict:
    return {
        "helix_r2": 0.8,  # R² of the helix fit to W_pos's top-3 principal coordinates
        "helix_top3": 0.5,  # and the share of W_pos's variance in those 3 components
        "helix_turns": 1.0,  # and the turns over the context: a helix of long period fits any smooth arc
        "ode_r2": 0.8,  # R² of f' ≈ W f + c on W_pos (the twisted-pair precondition), above phase-randomised surrogates
        "word_index_gain": 0.05,  # probe accuracy over the best position/space baseline, best residual point
        "weak_fraction": 0.5,
        "inputs": _inputs_digest(ctx),
    }


def _inputs_digest(ctx) -> str:
    """The cache keys of the sections the verdicts read (changes when any of them is recomputed)."""
    from .stages import STAGES as ALL

    h = hashlib.sha256()
    ov = getattr(ctx, "overrides", None) or {}
    for st in ALL:
        if st.name in INPUTS:
            try:
                key, _ = cache_key(st, st.options_for(ctx, ov.get(st.name)), ctx)
            except Exception as exc:  # an invalid override is reported by its own stage
                key = type(exc).__name__
            h.update(f"{st.name}:{key};".encode())
    return h.hexdigest()[:12]


def _row(key, verdict, number=None, value=None, threshold=None, reason="", head=None, section=None):
    """One verdict row of mechanism ``key``, linked to its section in MECHANISMS unless ``section`` is given."""
    name, default_section = next((n, sec) for k, n, sec in MECHANISMS if k == key)
    return {"mechanism": key, "name": name, "section": section or default_section, "verdict": verdict, "number": number,
            "value": value, "threshold": threshold, "reason": reason, "head": head}


def _grade(value, threshold, weak_fraction) -> str:
    if value is None:
        return UNTESTABLE
    return PRESENT if value >= threshold else WEAK if value >= weak_fraction * threshold else ABSENT


def _word_index_row(wi: dict, o: dict, wf: float) -> dict:
    """The word scheme's best probe gain over the position/space baselines, graded; the delimited
    schemes' best gain is named in the reason but not graded."""
    from ..analyses.word_index.options import DELIMITED

    best: dict[str, tuple] = {}
    for scheme, rep in (wi.get("schemes") or {}).items():
        kind = "delimited" if scheme in DELIMITED else "word"
        for lt, r in rep["labels"].items():
            for layer, g_ in zip(wi["layers"], r["gain"]):
                if g_ is not None and (kind not in best or g_ > best[kind][0]):
                    best[kind] = (g_, scheme, lt, layer, r["probes"][wi["layers"].index(layer)]["accuracy"])
    other = ""
    if "delimited" in best:
        g_, scheme, lt, layer, _ = best["delimited"]
        other = (f"; not graded: the {scheme} scheme's gain {g_:+.3f} (point {layer}, {lt} token), since a running "
                 "average of the context, which even random weights compute, counts its repeated delimiter")
    if "word" not in best:
        return _row("word_index", UNTESTABLE, reason="the verdict reads the word scheme (the post's), which was not run"
                    + other)
    gval, scheme, lt, layer, acc = best["word"]
    return _row("word_index", _grade(gval, o["word_index_gain"], wf), "word-index probe gain over position/space "
                "baselines", gval, o["word_index_gain"],
                f"best at residual point {layer} ({lt} token of each word): accuracy {acc:.3f}" + other)


def _why_not(ctx, name: str) -> str:
    """Why section ``name`` has no result in this report."""
    from .stages import STAGES as ALL

    st = next((s for s in ALL if s.name == name), None)
    if st is None:
        return f"no '{name}' section in this version of poslens"
    why = ctx.missing(st.needs) or (st.supports(ctx) if st.supports else None)
    return why or f"the '{name}' section was not run (--only/--skip)"


def verdict_rows(ctx, results: dict, o: dict) -> list[dict]:
    wf = o["weak_fraction"]
    rows = []
    # -- helix
    h = results.get("helix")
    if h is None:
        rows.append(_row("helix", UNTESTABLE, reason=_why_not(ctx, "helix")))
    else:
        r2, top3 = h["helix"]["r2"], sum(h["variance_explained"][:3])
        turns = h["helix"]["turns"]
        v = _grade(r2, o["helix_r2"], wf)
        if v == PRESENT and (top3 < o["helix_top3"] or turns < o["helix_turns"]):
            v = WEAK
        rows.append(_row("helix", v, "helix fit R²", r2, o["helix_r2"],
                         f"top-3 PCs hold {top3:.1%} of W_pos's variance (needs ≥ {o['helix_top3']:.0%}); "
                         f"period {h['helix']['period']:.1f} positions, {turns:.2f} turns"
                         + (f" (needs ≥ {o['helix_turns']:g}: a smooth arc, not yet a helix)"
                            if turns < o["helix_turns"] else "")))
    # -- head roles, from the profile
    p = results.get("profile")
    roles = {"previous_token": "previous-token score", "duplicate_token": "duplicate-token score",
             "induction": "induction score"}
    for role, number in roles.items():
        if p is None:
            rows.append(_row(role, UNTESTABLE, reason=_why_not(ctx, "profile")))
            continue
        b = (p.get("best") or {}).get(role)
        th = p["thresholds"][role]
        if b is None:
            rows.append(_row(role, UNTESTABLE, number, None, th,
                             "needs token inputs (the token embedding W_E); the profile measured layer-0 attention "
                             "on positional inputs alone"))
            continue
        heads = p[f"{role}_heads"]
        v = _grade(b["score"], th, wf)
        why = (f"{len(heads)} head(s) at or above the threshold: {', '.join(heads[:5])}" if heads else
               f"the strongest, head {b['head']}, is below the threshold") + " (share of attention, on repeated random tokens)"
        shifted = [(h.get("shifted_induction_score") or 0.0, k) for k, h in (p.get("heads") or {}).items()]
        if role == "induction" and not heads and shifted and max(shifted)[0] >= th:
            s, k = max(shifted)
            why += (f"; but head {k} attends two past the earlier copy ({s:.2f}): a shifted copying head, reading "
                    "there what a previous-token head wrote, which this score does not count")
        rows.append(_row(role, v, number, b["score"], th, why, head=b["head"]))
    # -- positional neurons
    n = results.get("dup_neurons")
    if n is None:
        rows.append(_row("positional_neurons", UNTESTABLE, reason=_why_not(ctx, "dup_neurons")))
    else:
        norms = n.get("pvo_norms") or []
        top = max(norms) if norms else None
        th = (n.get("options") or {}).get("threshold")
        fit = (n.get("fits") or {}).get(str(n.get("neuron"))) or {}
        rows.append(_row("positional_neurons", _grade(top, th, wf), "largest |PVO|", top, th,
                         f"{len(n.get('selected') or [])} neuron(s) selected; neuron {n.get('neuron')}'s PVO against "
                         f"position: slope {fit.get('slope', float('nan')):.3g}, R² {fit.get('r2', float('nan')):.2f}",
                         head=n.get("head") if isinstance(n.get("head"), str) else None))
    # -- twisted pair
    t = results.get("twisted_pair")
    g = (t or {}).get("gpt2") or {}
    if t is None or not g:
        rows.append(_row("twisted_pair", UNTESTABLE,
                         reason=_why_not(ctx, "twisted_pair") if t is None else "the model part did not run"))
    else:
        ode = g["ode"]
        r2, sur = ode.get("r2"), ode.get("surrogate_r2_max")
        above = r2 is not None and (sur is None or r2 > sur)
        neurons = g.get("neurons") or {}
        pre = f"f' ≈ W f + c on W_pos: R² {r2:.3f} (surrogates up to {sur if sur is None else round(sur, 3)})"
        if g.get("neurons_skipped") or "skipped" in neurons:  # the second: results cached before the typed part
            v = UNTESTABLE
            why = pre + "; the neuron pairs need layer 0's MLP, which this checkpoint lacks"
        else:
            k = neurons.get("n_twisted", 0)
            v = (PRESENT if k and above and r2 >= o["ode_r2"] else WEAK if (k or (above and r2 >= o["ode_r2"]))
                 else ABSENT)
            why = pre + f"; {k} twisted neuron pair(s) in layer 0"
            if v != _grade(r2, o["ode_r2"], wf):
                # The legend grades by the deciding number alone; this row needs the pairs as well.
                why += (f"; {v}, not {_grade(r2, o['ode_r2'], wf)} by R² alone: present needs R² ≥ {o['ode_r2']} "
                        "above every surrogate and a twisted pair, weak one of the two")
        rows.append(_row("twisted_pair", v, "ODE R² on W_pos", r2, o["ode_r2"], why))
    # -- word index
    wi = results.get("word_index")
    if wi is None:
        rows.append(_row("word_index", UNTESTABLE, reason=_why_not(ctx, "word_index")))
    else:
        rows.append(_word_index_row(wi, o, wf))
    # -- attention sink
    s = next((r for r in results.values() if isinstance(r, dict) and r.get("kind") == "sinks"), None)
    if s is not None:
        rows.append(_sink_from_stage(s, wf))
    elif p is not None and (p.get("best") or {}).get("sink"):
        b = p["best"]["sink"]
        th = p["thresholds"]["sink"]
        ref = (p.get("uniform_reference") or {}).get("first_position")
        rows.append(_row("sink", _grade(b["score"], th, wf), "first-position (BOS) score", b["score"], th,
                         f"{len(p.get('sink_heads') or [])} head(s) at or above the threshold (on repeated random "
                         "tokens)" + (f"; uniform attention would give {ref:.3f}" if ref else ""), head=b["head"]))
    else:
        rows.append(_row("sink", UNTESTABLE,
                         reason="needs token inputs through every layer (the token embedding W_E)"
                         if p is not None else _why_not(ctx, "profile")))
    return rows


def _sink_from_stage(s: dict, wf: float) -> dict:
    """The verdict from the attention-sink section: its strongest head's mean attention to the
    first position against the section's epsilon, on the most natural inputs it measured."""
    runs = {r["inputs"]: r for r in s.get("runs") or []}
    eps = s.get("epsilon")
    for kind in ("text", "random_tokens", "repeated_token", "positional"):
        r = runs.get(kind)
        if r and r.get("heads"):
            top = max(r["heads"], key=lambda h: h["first_attention"])
            v = _grade(top["first_attention"], eps, wf)
            why = (f"on {kind.replace('_', ' ')}: {len(r.get('sink_heads') or [])} sink head(s); sink share "
                   f"{r['sink_share']:.3f} of (sequence, layer, head) triples")
            if kind == "positional" and v == PRESENT:
                # Without token inputs the first position differs from the rest only by W_pos[0]:
                # a sink there is a hint, not the model's behaviour on text.
                v, why = WEAK, why + "; positional inputs alone (no token embedding), so at most weak"
            return _row("sink", v, "α(0), mean attention to position 0", top["first_attention"], eps, why,
                        head=top["head"], section="sinks")
    return _row("sink", UNTESTABLE, reason="; ".join(s.get("skipped_inputs") or []) or
                "the attention-sink section measured no heads", section="sinks")


def _run(ctx, opts):
    results = dict(getattr(ctx, "finished", None) or {})
    if "profile" not in results and not ctx.missing(("W_pos", "attn0")):
        from .stage_profile import profile_for

        results["profile"] = profile_for(ctx).to_dict()  # the verdicts read every section as its JSON
    return {"kind": "verdicts", "model": ctx.label, "options": opts, "rows": verdict_rows(ctx, results, opts)}


def _summarize(result) -> list[str]:
    return [f"{r['name']}: {r['verdict']}" + (f" ({r['number']} {r['value']:.3g}"
                                              + (f" of head {r['head']}" if r.get("head") else "")
                                              + f", threshold {r['threshold']})"
                                              if isinstance(r.get("value"), (int, float)) else f" ({r['reason']})")
            for r in result["rows"]]


STAGES = [
    Stage(
        name="verdicts",
        title="Verdicts: which positional mechanisms this model has",
        run=_run,
        needs=(),
        options=_options,
        summarize=_summarize,
        code=("poslens.report.stage_verdicts",),
        final=True,
        about=("One row per mechanism, read from the sections below (nothing is measured here). A mechanism is "
               "present when its deciding number reaches the threshold (and the row's other conditions hold: the "
               "helix also needs top-3 variance and turns), weak when it reaches weak_fraction of it or a condition "
               "is unmet, "
               "absent below, and not testable here when the checkpoint lacks what the measurement needs."),
    )
]
