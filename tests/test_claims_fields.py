"""A claim's ``field`` must read what its statement measures, so ``claims.check`` on a result gives the same
verdict as the study's rows: a gain is read as a gain, an excess over chance as an excess."""

from poslens import claims as C
from poslens.claims import helix_post


def _helix_dict(main: float, late: float, share: float | None = None, chance: float | None = None) -> dict:
    tp = None if share is None else {"subspace_share": share, "chance": chance}
    return {"cumulative": [0.5, 0.8, main], "truncations": {"late": {"cumulative": [0.5, 0.8, late]}},
            "token_position": tp}


def _verdict(d: dict, claim) -> bool | None:
    (k,) = [k for k in C.check(helix_post.CLAIMS, d, kinds=("any", "gpt2", "gpt2-small")) if k.claim is claim]
    return k.holds


def test_read_field_reads_a_difference_of_two_fields():
    d = {"a": {"x": 0.95}, "b": [0.25, 0.5]}
    assert abs(C.read_field(d, "a.x - b.1") - 0.45) < 1e-12
    assert C.read_field(d, "a.x - b.7") is None and C.read_field(d, "a.y - b.1") is None


def test_truncation_gain_claim_reads_the_gain_not_the_truncated_share():
    # the published claim is that truncating raises the share; a late share below the full one must fail,
    # whatever the share itself (reading the share alone, "above 0.02" could never fail)
    assert _verdict(_helix_dict(0.93, 0.92), helix_post.TRUNCATED) is False
    assert _verdict(_helix_dict(0.9106, 0.9511), helix_post.TRUNCATED) is True
    assert _verdict(_helix_dict(0.9106, 0.9206), helix_post.TRUNCATED) is False  # +0.01 is not "substantially"


def test_tokens_away_claim_compares_with_chance():
    # "concentrated away" = less of W_E's variance in W_pos's top-3 subspace than chance (3/768); a share can
    # never be below 0, so reading the share alone the claim could never hold
    assert _verdict(_helix_dict(0.91, 0.95, 0.001, 3 / 768), helix_post.TOKENS_AWAY) is True
    assert _verdict(_helix_dict(0.91, 0.95, 0.02, 3 / 768), helix_post.TOKENS_AWAY) is False
    assert _verdict(_helix_dict(0.91, 0.95), helix_post.TOKENS_AWAY) is None  # no W_E: not measured


def test_check_agrees_with_the_helix_rows_on_real_gpt2(partial_ckpt):
    # claims.check(helix_post.CLAIMS, result) and with_published's rows judge the same claims the same way
    from poslens.analyses.helix import helix
    from poslens.claims.attach import with_published
    from poslens.models import load_weights

    w = load_weights(partial_ckpt)
    r = with_published(helix(w), w)
    rows = {c.claim: c.reproduced for c in r.checks if c.claim}
    checked = [k for k in C.check(helix_post.CLAIMS, r, C.model_kind(w.cfg, w.label)) if k.holds is not None]
    assert {k.claim.id for k in checked} >= {"helix.top3_share", "helix.truncation_gain"}
    for k in checked:
        assert k.holds == rows[k.claim.id], (k.claim.id, k.ours)
