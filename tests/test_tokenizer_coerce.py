"""``tokenizer=`` takes what a researcher holds (a name, a tokenizer.json, a checkpoint directory,
a ``tokenizers.Tokenizer``, a transformers fast tokenizer) with the same results as the
:class:`Tokenizer` it stands for, and refuses anything else in one line before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from poslens.analyses.causal.metrics import logit_diff, metric_from_spec
from poslens.analyses.causal.named import ablate_named, patch_prompts
from poslens.analyses.causal.patching import head_sweep, patch_sweep
from poslens.analyses.causal.question_duplicate import duplicate_neuron_ablation
from poslens.analyses.causal.question_helix import helix_ablation
from poslens.analyses.causal.question_word_index import word_index_ablation
from poslens.analyses.geometry.logit_lens import greedy_generate, logit_lens
from poslens.analyses.geometry.subspaces import hidden_subspaces
from poslens.analyses.heads import duplicate_heads
from poslens.analyses.neurons import duplicate_neurons
from poslens.analyses.neurons.examples import top_activating_examples
from poslens.analyses.position_probe.harvest import position_probe
from poslens.analyses.rotary.harvest import rotary_usage
from poslens.analyses.sinks.harvest import attention_sinks
from poslens.analyses.word_index import word_index
from poslens.cli import cli
from poslens.errors import InvalidInputError, PoslensError
from poslens.models import Runner, load_weights, open_checkpoint
from poslens.models.save import save_checkpoint
from poslens.models.tokenizer import Tokenizer, as_tokenizer
from poslens.testing import random_checkpoint, small_config
from poslens.testing.word_index import planted_word_index_checkpoint

PROMPT = "And God said, Let there be light"


def _hf(tokenizer_json, **kw):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_json), **kw)


@pytest.fixture(scope="module")
def gpt2_json(tmp_path_factory):
    d = tmp_path_factory.mktemp("gpt2tok")
    Tokenizer.gpt2().save(d)
    return d / "tokenizer.json"


@pytest.fixture(scope="module")
def hf_gpt2(gpt2_json):
    from transformers import GPT2TokenizerFast

    return GPT2TokenizerFast(tokenizer_file=str(gpt2_json))  # offline: GPT-2's own files, saved as one json


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A random model with GPT-2's vocabulary (so GPT-2's tokenizer fits it)."""
    cfg = small_config(n_layers=1, n_heads=2, d_model=16, n_ctx=32, d_vocab=50257)
    return load_weights(str(random_checkpoint(tmp_path_factory.mktemp("big") / "m", cfg)))


def _forms(case, gpt2_json, hf_gpt2):
    """(model, the Tokenizer, {name: another form of it})."""
    from tokenizers import Tokenizer as TK

    if case == "tiny":
        path = open_checkpoint("tiny").path
        return "tiny", Tokenizer.for_checkpoint("tiny"), {
            "model name": "tiny", "directory": str(path), "directory Path": path, "tokenizer.json": path / "tokenizer.json",
            "tokenizers.Tokenizer": TK.from_file(str(path / "tokenizer.json")),
            "transformers fast": _hf(path / "tokenizer.json"),
        }
    return None, Tokenizer.gpt2(), {"'gpt2'": "gpt2", "tokenizers.Tokenizer": TK.from_file(str(gpt2_json)),
                                    "GPT2TokenizerFast": hf_gpt2}


def _same(a, b):
    drop = lambda d: {k: v for k, v in d.items() if k not in ("seconds", "timings")}  # noqa: E731
    assert drop(a.to_dict()) == drop(b.to_dict())


@pytest.mark.parametrize("case", ["tiny", "gpt2"])
def test_each_form_gives_what_the_tokenizer_gives(case, gpt2_json, hf_gpt2, big):
    model, tok, forms = _forms(case, gpt2_json, hf_gpt2)
    w = load_weights(model) if model else big
    lens = logit_lens(w, PROMPT, tok, n_generate=2)
    patch = patch_prompts(w, "And David said", "And Moses said", "loss", tokenizer=tok)
    metric = metric_from_spec("logit-diff: God| said", w, tokenizer=tok).info
    for name, form in forms.items():
        wrapped = as_tokenizer(form, "test")
        assert (wrapped.encode(PROMPT, prepend_bos=True), wrapped.vocab_size) == (tok.encode(PROMPT, prepend_bos=True),
                                                                                tok.vocab_size), name
        _same(logit_lens(w, PROMPT, form, n_generate=2), lens)             # an activation analysis
        _same(patch_prompts(w, "And David said", "And Moses said", "loss", tokenizer=form), patch)  # a causal helper
        assert metric_from_spec("logit-diff: God| said", w, tokenizer=form).info == metric, name  # a metric


def test_a_tokenizer_is_itself_and_none_keeps_the_default():
    tok = Tokenizer.gpt2()
    assert as_tokenizer(tok, "x") is tok and as_tokenizer(None, "x") is None
    w = load_weights("tiny")
    _same(attention_sinks(w, inputs="text", n_seq=2, seq_len=16, tokenizer=None),
          attention_sinks(w, inputs="text", n_seq=2, seq_len=16, tokenizer=str(open_checkpoint("tiny").path)))


def test_a_transformers_tokenizer_encodes_as_it_does_itself(hf_gpt2):
    tok = as_tokenizer(hf_gpt2, "x")
    for text in (PROMPT, " Ünïcødé ✓\n\n  x=3;", "a<|endoftext|>b", ""):
        assert tok.encode(text) == hf_gpt2.encode(text, add_special_tokens=False), text
    assert tok.bos_token_id == Tokenizer.gpt2().bos_token_id == 50256  # GPT-2's convention: <|endoftext|>
    assert tok.decode(tok.encode(PROMPT)) == PROMPT


def test_a_transformers_tokenizer_without_endoftext_gives_its_own_bos(tmp_path):
    from tokenizers import Tokenizer as TK
    from tokenizers import models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = TK(models.WordLevel({"a": 0, "b": 1, "<s>": 2, "<unk>": 3}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = as_tokenizer(PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>"), "x")
    assert tok.encode("a b", prepend_bos=True) == [2, 0, 1]


def test_truncation_left_on_a_transformers_tokenizer_cuts_nothing(hf_gpt2):
    import copy

    hf = copy.deepcopy(hf_gpt2)
    hf.pad_token = hf.eos_token
    hf(["one two three four five", "x"], truncation=True, max_length=2, padding=True)  # leaves both set on the backend
    assert hf.backend_tokenizer.truncation is not None
    assert len(as_tokenizer(hf, "x").encode("one two three four five")) == 5
    assert hf.backend_tokenizer.truncation is not None  # the caller's object is left as it was


def test_a_tokenizer_saved_alone_and_a_bad_file(hf_gpt2, tmp_path):
    hf_gpt2.save_pretrained(tmp_path / "tok")  # tokenizer files without a config.json
    assert as_tokenizer(str(tmp_path / "tok"), "x").encode(PROMPT) == Tokenizer.gpt2().encode(PROMPT)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InvalidInputError, match="cannot read .*bad.json as a tokenizer.json") as e:
        as_tokenizer(tmp_path / "bad.json", "x")
    assert "\n" not in str(e.value)
    with pytest.raises(PoslensError, match="does not exist") as e:
        as_tokenizer(str(tmp_path / "nowhere"), "x")
    assert "\n" not in str(e.value)
    # a missing .json is named as a missing file, not an unknown model to fetch from the hub
    for missing in (Path("tok/tokenizer.json"), "missing.json"):
        with pytest.raises(InvalidInputError, match=f"^x's tokenizer= {missing}: no such file; give an existing"):
            as_tokenizer(missing, "x")


def test_a_tokenizer_path_under_home_is_expanded(tmp_path, monkeypatch):
    Tokenizer.gpt2().save(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # it was refused as 'a file, not a checkpoint directory'
    assert as_tokenizer("~/tokenizer.json", "x").encode(PROMPT) == Tokenizer.gpt2().encode(PROMPT)


class _SlowTokenizer:
    """What a slow (pure-Python) transformers tokenizer looks like here: encode, no backend."""

    def encode(self, text, add_special_tokens=True):
        return [0]


@pytest.mark.parametrize("bad", [3, 1.5, ["gpt2"], b"gpt2", _SlowTokenizer(), {"vocab": {}}])
def test_anything_else_is_refused_in_one_line(bad):
    with pytest.raises(InvalidInputError) as e:
        as_tokenizer(bad, "logit_lens")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("logit_lens's tokenizer= takes a Tokenizer, 'gpt2', ")
    assert msg.endswith(f"; got {type(bad).__name__}")


# every public entry point with tokenizer=, called so that the tokenizer is the first thing it could refuse
ENTRY_POINTS = {
    "duplicate_heads": lambda w, t: duplicate_heads(w, tokenizer=t),
    "duplicate_neurons": lambda w, t: duplicate_neurons(w, tokenizer=t),
    "word_index": lambda w, t: word_index(w, tokenizer=t),
    "attention_sinks": lambda w, t: attention_sinks(w, tokenizer=t),
    "rotary_usage": lambda w, t: rotary_usage(w, tokenizer=t),
    "position_probe": lambda w, t: position_probe(w, tokenizer=t),
    "logit_lens": lambda w, t: logit_lens(w, tokenizer=t),
    "hidden_subspaces": lambda w, t: hidden_subspaces(w, tokenizer=t),
    "greedy_generate": lambda w, t: greedy_generate(Runner(w), [1], 1, 1, tokenizer=t),
    "top_activating_examples": lambda w, t: top_activating_examples(Runner(w), torch.zeros(1, 4, dtype=torch.long), 0, 0,
                                                                    tokenizer=t),
    "ablate_named": lambda w, t: ablate_named(w, heads=[(0, 1)], tokenizer=t),
    "patch_prompts": lambda w, t: patch_prompts(w, "And David said", "And Moses said", "loss", tokenizer=t),
    "patch_sweep": lambda w, t: patch_sweep(Runner(w), None, None, None, tokenizer=t),
    "head_sweep": lambda w, t: head_sweep(Runner(w), None, None, None, tokenizer=t),
    "logit_diff": lambda w, t: logit_diff(w, 1, 2, tokenizer=t),
    "metric_from_spec": lambda w, t: metric_from_spec("loss", w, tokenizer=t),
    "duplicate_neuron_ablation": lambda w, t: duplicate_neuron_ablation(w, tokenizer=t),
    "helix_ablation": lambda w, t: helix_ablation(w, tokenizer=t),
    "word_index_ablation": lambda w, t: word_index_ablation(w, tokenizer=t),
}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_every_entry_point_refuses_a_wrong_tokenizer_before_any_work(name):
    w = load_weights("tiny")
    with pytest.raises(InvalidInputError, match=f"^{name}'s tokenizer= takes .*; got int$"):
        ENTRY_POINTS[name](w, 3)
    # another model's tokenizer (more ids than the embedding) is refused too, rather than failing in a lookup
    with pytest.raises(InvalidInputError, match="^tokenizer gpt2 .* has 50257 tokens but tiny has d_vocab=1024; "):
        ENTRY_POINTS[name](w, _GPT2)


_GPT2 = Tokenizer.gpt2()


def test_entry_points_without_a_model_take_the_forms_too(tmp_path, gpt2_json):
    with pytest.raises(InvalidInputError, match="^save_checkpoint's tokenizer= takes"):
        save_checkpoint(tmp_path / "m", small_config(), {}, tokenizer=3)
    with pytest.raises(InvalidInputError, match="^planted_word_index_checkpoint's tokenizer= takes"):
        planted_word_index_checkpoint(tmp_path / "p", tokenizer=[1])
    path = save_checkpoint(tmp_path / "s", small_config(), {}, tokenizer=open_checkpoint("tiny").path)
    assert Tokenizer.from_file(path / "tokenizer.json").identity.split()[-1] == Tokenizer.for_checkpoint("tiny").identity.split()[-1]


def test_encode_and_decode_refuse_the_wrong_type_in_one_line():
    tok = Tokenizer.for_checkpoint("tiny")
    for call, msg in [(lambda: tok.encode(5), "Tokenizer.encode takes one text (a str); got int"),
                      (lambda: tok.encode(["a"]), "got list; use encode_batch for several"),
                      (lambda: tok.encode_batch("text"), "Tokenizer.encode_batch takes a list of texts; got str; use encode"),
                      (lambda: tok.encode_batch(5), "got int"),
                      (lambda: tok.decode("12"), "Tokenizer.decode takes a sequence of token ids; got str"),
                      (lambda: tok.decode(7), "got int"), (lambda: tok.decode([[1, 2]]), "got list"),
                      (lambda: tok.decode(torch.tensor([[1, 2]])), "got Tensor"),
                      (lambda: tok.decode([5, -1]), "token ids are >= 0; got -1")]:  # had been an OverflowError
        with pytest.raises(InvalidInputError, match=msg.replace("(", r"\(").replace(")", r"\)")) as e:
            call()
        assert "\n" not in str(e.value)
    assert tok.encode_batch(("a b", "c")) == [tok.encode("a b"), tok.encode("c")]
    assert tok.decode(torch.tensor([339, 422])) == tok.decode([339, 422]) == "And God"


def test_the_cli_reads_the_models_own_tokenizer_as_before(tmp_path):
    res = CliRunner().invoke(cli, ["lens", "--prompt", PROMPT, "-o", str(tmp_path / "o"), "--generate", "2", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    r = logit_lens("tiny", PROMPT, open_checkpoint("tiny").path / "tokenizer.json", n_generate=2).to_dict()
    assert (d["top_k"], d["generation"], d["last_entropy"]) == (r["top_k"], r["generation"], r["last_entropy"])


def test_a_llama_style_tokenizer_file_takes_the_models_bos(tmp_path):
    """A Llama's tokenizer.json names its BOS "<s>" (no <|endoftext|>): given as a path, a
    tokenizers.Tokenizer or a Tokenizer read from it, the model's config gives the BOS, as it does
    when tokenizer= is left out; prepend_bos failed with 'has no <|endoftext|> token'."""
    from tokenizers import Tokenizer as TK

    from poslens.testing.families import family_checkpoint

    path = family_checkpoint(tmp_path / "llama", "llama")
    (path / "tokenizer.json").write_text((path / "tokenizer.json").read_text().replace("<|endoftext|>", "<s>"))
    w = load_weights(str(path))
    ref = logit_lens(w, PROMPT, None, n_generate=1, prepend_bos=True)
    own = Tokenizer.from_file(path / "tokenizer.json")
    for form in (path / "tokenizer.json", TK.from_file(str(path / "tokenizer.json")), _hf(path / "tokenizer.json"), own):
        _same(logit_lens(w, PROMPT, form, n_generate=1, prepend_bos=True), ref)
    assert own.bos_token_id is None  # the caller's object is left as it was


def test_a_fast_tokenizer_has_the_fingerprint_of_its_tokenizer_json():
    """The identity a result records (word_index's options) is the tokenizer's, whichever form carried
    it: transformers adds a post-processor encode never applies, and the fingerprint differed."""
    tiny = open_checkpoint("tiny").path / "tokenizer.json"
    assert as_tokenizer(_hf(tiny), "x").identity.split(", ")[-1] == Tokenizer.from_file(tiny).identity.split(", ")[-1]
