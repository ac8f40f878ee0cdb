"""The geometry of weights and hidden states, after the slides "Dissecting the Frog":
:mod:`.spectra` (singular-value metrics of every weight matrix, QK structure),
:mod:`.spheres` (positional spheres around token embeddings, embedding norms),
:mod:`.subspaces` (hidden-state signal subspaces across layers; the arithmetic on the
arrays is :mod:`.hidden_states`'), :mod:`.logit_lens` (each layer read as a next-token
distribution) and :mod:`.probe` (the probing points the last two share). They measure
only; the slides' figures are :mod:`poslens.claims.dissecting_the_frog.geometry`'s.
Nothing is imported here, so a report stage's cache key covers just the module it runs.

>>> from poslens.analyses.geometry import spectra, spheres, subspaces, logit_lens
"""
