"""Plain-language findings and summary lines of a twisted-pair result (its published-vs-ours
checks are :mod:`poslens.claims.twisted_pair_post`'s).

>>> from poslens.analyses.twisted_pair import twisted_pair
>>> r = twisted_pair(n=64, M=4, k=2, sweep_M=(), sweep_n=(), sweep_k=(), grid=False, claims=False)
>>> result_findings(r)[0].split(" isolates")[0]
"The post's literal gate direction f(s_m)"
"""

from __future__ import annotations


def result_findings(r) -> list[str]:
    """The result's ``findings``: plain sentences, negatives included."""
    c, g = r.construction, r.gpt2
    findings = [f"The post's literal gate direction f(s_m) isolates {c.dot_gate_ok} of {c.n_sentries} sentry cells "
                f"on this {c.curve.name}; the tuned gates isolate {c.n_sentries - c.n_gates_failed}."]
    if g:
        n = g.neurons
        if g.neurons_skipped:
            findings.append(f"Neuron-pair search not run on {r.model}: {g.neurons_skipped}")
        elif n is not None and n.n_twisted == 0:
            findings.append(f"No twisted pair in layer {n.layer} of {r.model} (negative result): no pair has "
                            "near-identical inputs, opposite outputs and an input difference along x_j - x_i.")
    return findings


def summarize(r) -> list[str]:
    """A few lines for the terminal and the report page."""
    v, c = r.verification, r.construction
    lines = [
        f"construction ({c.variant}, {c.curve.name}, n={c.n}, M={c.M}, k={c.k}): {c.n_neurons} "
        f"neurons, d_model {c.d_model}; {v.n_pairs} pairs, max |error| {v.max_error:.3g} positions vs bound "
        f"{v.max_bound:.3g}; {'all inside the bound' if v.within_bound else str(v.n_outside_bound) + ' outside'}",
    ]
    lines += [f"[{'reproduced' if ch.reproduced else 'NOT reproduced'}] {ch.what}: {ch.ours}" for ch in r.checks]
    return lines + list(r.findings)
