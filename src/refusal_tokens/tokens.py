"""Putting the scheme's tokens into a tokenizer and a model.

Each scheme token (``[refuse]``, ``[respond]``, ``[Requests with safety concerns]`` …) is added as one *added*
token: encoding its string gives exactly one id, with or without a leading space, so that the first response
position has one logit per token to read.

New embedding rows need a starting point. Measured on SmolLM2-135M before the study's pipeline existed (README:
Deviations, "New-token initialisation"):
transformers' default ``mean_resizing`` starts a new token at p≈2e-9 at the first response position, and 20
steps at lr 5e-5 left it at p≈3e-7 (AUROC 0.53: not learned); starting the rows from the embeddings of related
words and training at lr 2e-4 gave AUROC 0.95 in the same 20 steps. Hence two schemes here:

- ``mean``: transformers' default (``resize_token_embeddings(mean_resizing=True)``), the paper-agnostic baseline;
- ``words``: each new row is the mean embedding of the word pieces of a short description of the token (" refuse",
  " respond", " safety concerns" …). With tied embeddings (SmolLM2) the output row moves too, so the new token's
  logit starts near the logit of its description words.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import DataError
from .tagging import CATEGORY_TOKENS, REFUSE, RESPOND, scheme_tokens

INITS = ("mean", "words", "none")  # "none": only for the none scheme (no tokens)

# What each token's embedding starts from under ``init="words"`` (averaged over the description's pieces).
INIT_WORDS: dict[str, str] = {
    REFUSE: " refuse",
    RESPOND: " respond",
    CATEGORY_TOKENS["Incomplete requests"]: " refuse incomplete",
    CATEGORY_TOKENS["Unsupported requests"]: " refuse unsupported",
    CATEGORY_TOKENS["Indeterminate requests"]: " refuse unknown",
    CATEGORY_TOKENS["Humanizing requests"]: " refuse human",
    CATEGORY_TOKENS["Requests with safety concerns"]: " refuse unsafe",
}


def add_tokens(tokenizer, scheme: str) -> list[int]:
    """Add the scheme's tokens (idempotent) and return their ids in ``scheme_tokens`` order."""
    from tokenizers import AddedToken

    tokens = scheme_tokens(scheme)
    new = [t for t in tokens if t not in tokenizer.get_vocab()]
    if new:  # special: never split, no normalisation, and no space is eaten on either side
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False) for t in new])
    return token_ids(tokenizer, tokens)


def token_ids(tokenizer, tokens: Sequence[str]) -> list[int]:
    """Ids of ``tokens``; each must encode to exactly one id, with and without a leading space."""
    ids = []
    for token in tokens:
        plain = tokenizer.encode(token, add_special_tokens=False)
        spaced = tokenizer.encode(" " + token, add_special_tokens=False)
        if len(plain) != 1 or spaced[-1:] != plain:
            raise DataError(f"tokenizer does not hold {token!r} as one token (encodes to {plain}, with a leading "
                            f"space to {spaced}); add the scheme's tokens first")
        ids.append(plain[0])
    return ids


def require_tokens(tokenizer, scheme: str) -> list[int]:
    """Ids of the scheme's tokens in a tokenizer that must already hold them (a clear error otherwise)."""
    missing = [t for t in scheme_tokens(scheme) if t not in tokenizer.get_vocab()]
    if missing:
        raise DataError(f"tokenizer lacks the {scheme!r} scheme tokens {missing}: was this model trained with it?")
    return token_ids(tokenizer, scheme_tokens(scheme))


def resize_and_init(model, tokenizer, scheme: str, init: str) -> list[int]:
    """Add the tokens, resize the model's embeddings and initialise the new rows; returns the token ids."""
    if init not in INITS:
        raise DataError(f"unknown token init {init!r}; expected one of {list(INITS)}")
    if (init == "none") != (scheme == "none"):
        raise DataError(f"init 'none' goes with scheme 'none' only (got scheme {scheme!r}, init {init!r})")
    old = model.get_input_embeddings().weight.shape[0]
    ids = add_tokens(tokenizer, scheme)
    if len(tokenizer) > old:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    if init == "words":
        embed = model.get_input_embeddings().weight
        with torch.no_grad():
            for token, token_id in zip(scheme_tokens(scheme), ids):
                pieces = tokenizer.encode(INIT_WORDS[token], add_special_tokens=False)
                embed[token_id] = embed[pieces].mean(dim=0)
                head = model.get_output_embeddings()
                if head is not None and head.weight.data_ptr() != embed.data_ptr():  # untied head
                    head.weight[token_id] = head.weight[pieces].mean(dim=0)
    return ids
