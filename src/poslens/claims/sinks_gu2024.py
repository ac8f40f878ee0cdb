"""Published anchors of "When Attention Sink Emerges in Language Models: An Empirical View" (Gu et al. 2024).

The study's method is the analysis's default (epsilon 0.3, 64-token inputs, 100 sequences,
the share of (sequence, layer, head) triples whose first position gets mean attention above
epsilon). Its findings are stated as directions, not as one number per model we can check
here (its per-model figures are for natural text from its own data set), so the claims are
directional and, as the study finds them in every trained LM it looked at, apply to any model: a sink exists (share above zero; a uniform head never passes 0.3 at 64
tokens), on natural text and on random and repeated tokens alike; the first key is not
larger than the others (norm ratio below 1: the sink is not a norm effect); queries point
at the first key more than at the others (cosine gap above 0: "a key bias").
"""

from __future__ import annotations

from . import Claim

STUDY = "When Attention Sink Emerges in Language Models (Gu et al. 2024)"

CLAIMS: tuple[Claim, ...] = (
    *(Claim(f"sink_exists_{k}", STUDY, "Section 3, inputs", f"a trained LM has attention sinks on {k.replace('_', ' ')} inputs",
            f"runs.{k}.sink_share", 0.0, "above", applies_to="any")
      for k in ("text", "random_tokens", "repeated_token")),
    Claim("first_key_not_larger", STUDY, "Section 3, QK angles", "the first position's key norm is smaller than the others'",
          "runs.text.first_key_norm_ratio", 1.0, "below", applies_to="any"),
    Claim("first_key_angle", STUDY, "Section 3, QK angles",
          "queries have a larger cosine with the first key than with the others (the sink is a key bias)",
          "runs.text.qk_cos_gap", 0.0, "above", applies_to="any"),
)
