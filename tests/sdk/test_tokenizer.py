"""skugen.tokenizer: the runtime's word-level prompt tokenizer (no torch)."""
from __future__ import annotations

import numpy as np
import pytest

from skugen.errors import BundleError, InputError
from skugen.tokenizer import BOS, EOS, PAD, SPECIALS, UNK, Tokenizer, mask, words

TOK = Tokenizer.from_words(["a", "photo", "of", "sneaker", "white", "t", "shirt"], context=8)


def test_layout_bos_words_eos_then_padding():
    ids, unknown = TOK.encode("A photo of a Sneaker")
    assert len(ids) == 8 and unknown == []
    assert ids[0] == BOS and ids[6] == EOS and ids[7] == PAD
    assert TOK.decode(ids) == "a photo of a sneaker"


def test_punctuation_splits_words_like_training_did():
    assert words("White T-shirt, size M!") == ["white", "t", "shirt", "size", "m"]


def test_unknown_words_map_to_unk_and_are_reported():
    ids, unknown = TOK.encode("a purple sneaker")
    assert ids[1:4] == [TOK.tokens.index("a"), UNK, TOK.tokens.index("sneaker")]
    assert unknown == ["purple"]
    batch, unk = TOK.encode_batch(["a sneaker", "gym shoes"])
    assert batch.dtype == np.int64 and batch.shape == (2, 8)
    assert unk == [[], ["gym", "shoes"]]


@pytest.mark.parametrize("bad, msg", [
    ("", "is empty"), ("  ,.; ", "is empty"), ("a " * 7, "has 7 words; this model reads at most 6"),
    (3, "must be a string"),
])
def test_bad_prompts_say_what_is_accepted(bad, msg):
    with pytest.raises(InputError, match=msg):
        TOK.encode(bad)


@pytest.mark.parametrize("bad", [[], "a sneaker", None, ()])
def test_bad_prompt_lists(bad):
    with pytest.raises(InputError, match="non-empty list of strings"):
        TOK.encode_batch(bad)


def test_null_prompt_and_mask():
    null = TOK.null()
    assert null[:2] == [BOS, EOS] and set(null[2:]) == {PAD}
    m = mask(np.asarray([null, TOK.encode("a photo")[0]]))
    assert m.dtype == np.float32 and m.sum(1).tolist() == [2.0, 4.0]


def test_round_trip_and_validation():
    assert Tokenizer.from_dict(TOK.to_dict()) == TOK
    d = TOK.to_dict()
    for broken, msg in [({**d, "version": 9}, "version 1"), ({**d, "tokens": ["x", *d["tokens"]]}, "starting with"),
                        ({**d, "tokens": d["tokens"] + ["a"]}, "unique"), ({**d, "context": 2}, "context")]:
        with pytest.raises(BundleError, match=msg):
            Tokenizer.from_dict(broken)
    assert TOK.tokens[:4] == SPECIALS
