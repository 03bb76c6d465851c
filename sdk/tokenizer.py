"""The word-level prompt tokenizer of skugen's text-conditioned families (runtime side: no torch).

    tok = Tokenizer.from_dict(json.loads(Path("vocab.json").read_text()))
    ids, unknown = tok.encode_batch(["a photo of white sneakers"])   # (B, context) int64, unknown words per prompt

The vocabulary is a committed JSON file written by the toolchain from the *training* prompts only, so a
word that never appeared in training maps to the unknown-token id and is reported (it has no trained
embedding; silently dropping it would hide that the prompt was only partly understood).
Sequence layout: [BOS] w1 .. wn [EOS] [PAD] ..., padded to `context`; the empty prompt [BOS][EOS] is the
unconditional input of classifier-free guidance. A word-level tokenizer is enough for a product
vocabulary of a few hundred words and keeps the runtime dependency-free (no sentencepiece/tokenizers).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import BundleError, InputError

VOCAB_VERSION = 1
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = range(4)
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The words of a prompt: lower-cased runs of letters and digits ("T-shirt" -> ["t", "shirt"])."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Tokenizer:
    tokens: tuple[str, ...]          # id -> word; ids 0..3 are SPECIALS
    context: int                     # sequence length the text encoder takes, BOS and EOS included

    def __post_init__(self) -> None:
        self.__dict__["_ids"] = {w: i for i, w in enumerate(self.tokens)}

    @classmethod
    def from_words(cls, vocab: Iterable[str], context: int) -> "Tokenizer":
        return cls(tokens=SPECIALS + tuple(sorted(set(vocab) - set(SPECIALS))), context=context)

    @classmethod
    def from_dict(cls, d: Any, where: str = "vocab.json") -> "Tokenizer":
        fix = "Re-export the bundle with `skugen export`."
        if not isinstance(d, Mapping) or d.get("version") != VOCAB_VERSION:
            raise BundleError(f"{where} is not a skugen vocabulary of version {VOCAB_VERSION}. {fix}")
        toks, ctx = d.get("tokens"), d.get("context")
        if (not isinstance(toks, list) or tuple(toks[:4]) != SPECIALS or not all(isinstance(t, str) for t in toks)
                or len(set(toks)) != len(toks)):
            raise BundleError(f"{where}: 'tokens' must list unique words starting with {list(SPECIALS)}. {fix}")
        if isinstance(ctx, bool) or not isinstance(ctx, int) or ctx < 3:
            raise BundleError(f"{where}: 'context' must be an int >= 3, got {ctx!r}. {fix}")
        return cls(tokens=tuple(toks), context=ctx)

    def to_dict(self) -> dict:
        return {"version": VOCAB_VERSION, "context": self.context, "tokens": list(self.tokens)}

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def max_words(self) -> int:
        return self.context - 2

    def encode(self, prompt: str) -> tuple[list[int], list[str]]:
        """(ids of length `context`, the words that were unknown). Raises InputError for what cannot be run."""
        if not isinstance(prompt, str):
            raise InputError(f"a prompt must be a string, got {type(prompt).__name__}. Pass prompts=['a photo of "
                             "a sneaker', ...].")
        ws = words(prompt)
        if not ws:
            raise InputError(f"prompt {prompt!r} is empty (no letters or digits). Describe the product, e.g. "
                             "'a photo of a sneaker'; for unconditional samples use guidance=0 with any prompt.")
        if len(ws) > self.max_words:
            raise InputError(f"prompt {prompt!r} has {len(ws)} words; this model reads at most {self.max_words} "
                             f"(context {self.context} tokens with BOS/EOS). Shorten the prompt.")
        ids = [self._ids.get(w, UNK) for w in ws]
        unknown = [w for w, i in zip(ws, ids) if i == UNK]
        seq = [BOS, *ids, EOS]
        return seq + [PAD] * (self.context - len(seq)), unknown

    def null(self) -> list[int]:
        """The empty prompt: the unconditional branch of classifier-free guidance (and of prompt dropout)."""
        return [BOS, EOS] + [PAD] * (self.context - 2)

    def encode_batch(self, prompts: Sequence[str]) -> tuple[np.ndarray, list[list[str]]]:
        if isinstance(prompts, str) or not isinstance(prompts, Sequence) or len(prompts) == 0:
            raise InputError(f"prompts must be a non-empty list of strings, got {prompts!r}. "
                             "Pass prompts=['a photo of a sneaker', ...].")
        out = [self.encode(p) for p in prompts]
        return np.asarray([ids for ids, _ in out], dtype=np.int64), [u for _, u in out]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.tokens[i] for i in ids if i not in (PAD, BOS, EOS))


def mask(ids: np.ndarray) -> np.ndarray:
    """(B, L) float32: 1 for the tokens the denoiser attends to (BOS .. EOS), 0 for padding."""
    return (np.asarray(ids) != PAD).astype(np.float32)
