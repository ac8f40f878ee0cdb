"""The shipped organisms: registered, loadable by step, carrying their history, and showing what their cards say.

Each check measures the shipped files with poslens's own analyses, so a retrained organism that
lost a mechanism fails here rather than in a reader's hands.
"""

from __future__ import annotations

import json
import numpy as np
import pytest
from click.testing import CliRunner

from poslens.cli import cli
from poslens.errors import UnknownModelError
from poslens.models import load_weights
from poslens.models.registry import EMBEDDED_DIR, ORGANISMS, resolve
from poslens.train import measures as M
from poslens.train.history import read_manifest, snapshot_dirs


def test_every_organism_ships_a_log_spaced_float16_history_within_the_size_budget():
    total = sum(p.stat().st_size for p in EMBEDDED_DIR.rglob("*") if p.is_file())
    assert total <= 25 * 2**20, f"{total / 2**20:.1f} MB shipped"
    for name in ORGANISMS:
        d = resolve(name).local_dir
        man = read_manifest(d)
        steps = [s for s, _ in snapshot_dirs(d)]
        assert man["dtype"] == "float16" and steps[0] == 0 and len(steps) >= 13, (name, steps)
        assert steps[-1] == json.loads((d / "training_log.json").read_text())["step"]
        ratios = np.diff(np.log(steps[1:]))
        assert ratios.max() < 4 * ratios.mean(), (name, steps)  # log-spaced, not a few late snapshots
        card = (d / "MODEL.md").read_text()
        assert card.startswith(f"# poslens-{name} (`{name}`)") and "## When each mechanism formed" in card


def test_a_step_names_a_snapshot_of_an_embedded_organism():
    d = resolve("tiny").local_dir
    step, folder = snapshot_dirs(d)[-2]
    src = resolve(f"tiny@{step}")
    assert src.local_dir == folder and src.label == f"tiny@{step}"
    assert load_weights(f"tiny@{step}").cfg.n_layers == load_weights("tiny").cfg.n_layers
    with pytest.raises(UnknownModelError, match="no snapshot at step 7777777; the nearest is"):
        resolve("tiny@7777777")
    with pytest.raises(UnknownModelError, match="is a training step"):
        resolve("tiny@main")


def test_tiny_has_the_smooth_w_pos_its_card_reports():
    from poslens.analyses.helix import helix

    hx = helix(load_weights("tiny"), tokens=False, sinusoidal=False, truncations=False)
    assert sum(hx.variance_explained[:3]) >= 0.6 and hx.short_period.share <= 0.05


def test_tiny_attn_has_all_three_heads_and_the_sweep_finds_when_they_formed(tmp_path):
    s = M.mechanism_scores("tiny-attn", n_seq=8)
    assert s["prev"] >= 0.8 and s["prev_head"].startswith("0."), s  # the layer its induction heads compose with
    assert s["dup"] >= 0.3 and s["induction"] >= 0.3 and s["incontext_gain"] >= 0.3 and s["induction_gain"] >= 0.3, s
    assert len({s["prev_head"], s["dup_head"], s["induction_head"]}) == 3, s  # three heads, not one counted thrice
    r = CliRunner().invoke(cli, ["sweep", "-m", "tiny-attn", "-a", "heads", "--executor", "serial", "--no-page",
                                 "-o", str(tmp_path / "sw")])
    assert r.exit_code == 0, r.output
    dup = json.loads((tmp_path / "sw" / "tables" / "best_duplicate_score.json").read_text())
    (dup_jumps,) = dup["jumps"].values()  # the duplicate-token head forms late: an open jump at the history's end
    assert [j["open"] for j in dup_jumps] == [True] and dup_jumps[0]["size"] >= 0.3, dup_jumps
    table = json.loads((tmp_path / "sw" / "tables" / "best_induction_score.json").read_text())
    (jumps,) = table["jumps"].values()
    formed = M.formation(M.history_scores(resolve("tiny-attn").local_dir, n_seq=4)["rows"], "induction")
    # the detector's jump is the step where the card says the head formed (or the snapshot before it)
    steps = [s for s, _ in snapshot_dirs(resolve("tiny-attn").local_dir)]
    assert formed["formed_at"] is not None and jumps and jumps[0]["size"] >= 0.2, (formed, jumps)
    assert steps.index(jumps[0]["step"]) in (steps.index(formed["formed_at"]) - 1, steps.index(formed["formed_at"]))


def test_the_report_says_why_tiny_attn_has_no_duplicate_neurons():
    """Its duplicate-token head sits in layer 1 and every MLP is zero: the neuron sections are not
    applicable (no neuron reads any head), which is a different statement from "no such head"."""
    from poslens.report import default_stages
    from poslens.report.orchestrate import Context

    ctx = Context("tiny-attn", size="quick")
    for st in default_stages():
        if st.name in ("dup_neurons", "causal_dup_neurons"):
            why = ctx.missing(st.needs) or (st.supports(ctx) if st.supports else None)
            assert why and why.startswith("not applicable") and "attention-only" in why, (st.name, why)
