"""Controlling refusals at inference: read p(scheme tokens) at the first response position, decide the first
token by a rule, force it, and let the model continue.

Paper §3–4 (Jain et al., 2025): the refusal token's probability is a knob. This module has three parts.

**Scoring** (:func:`score`). One forward pass per batch over chat-templated prompts (length-bucketed, left padded,
explicit position ids), last position only, softmax in float32 at each requested temperature. Per prompt it keeps
p(each scheme token) and the largest probability of any *other* token (``p_other``), so that a bias or a
temperature can later be applied exactly without another forward pass.

**Rules** (:class:`Setting`, :func:`decide`). Pure functions of a score row. With probabilities p at temperature T
(p ∝ exp(logit / T)) and a logit bias b_i added to refusal token i before the softmax, the biased probabilities are
exact functions of the stored ones: p'_i = p_i·e^{b_i} / Z for a refusal token, p'_j = p_j / Z for every other
token, Z = 1 + Σ_i p_i (e^{b_i} − 1). Then:

- ``argmax`` (no intervention): exactly what greedy decoding emits first, after bias: the largest of p'_i (each
  refusal token), p'([respond]) and p'_other (the most likely non-scheme token). When a non-scheme token wins,
  the decision is ``free``: the model's own unforced greedy response (cached as a third continuation, for the
  prompts whose top token is not a scheme token). A bias is added before the temperature, as transformers' logits
  processors do: p ∝ exp((logit + b) / T), i.e. bias b / T on the temperature-T probabilities.
- ``threshold`` (the official rule): refuse iff p'(refusal) ≥ t, where p'(refusal) is the sum over the scheme's
  refusal tokens (one token under ``single``). A threshold per category token: t is the threshold of the most
  likely category token c*. (The official category script crashes and always thresholds temperature-2
  probabilities; here the temperature is a setting, 1 by default.)

Under ``category`` a refusal always continues from c*, the model's most likely category token (without bias):
settings decide *whether* to refuse. This keeps every sweep at ≤ 2 generations per prompt; a per-category bias
strong enough to change which category token is the most likely would, in free decoding, start from that token
instead (README: Deviations).

**Generation** (:class:`Backend`, :class:`HFBackend`, :class:`GenerationCache`). With greedy decoding a response
depends only on the forced first token, so any number of settings needs at most two generations per prompt: the
refusal token and [respond], plus the unforced greedy response (``free``) where the top token is not a scheme token. They
are generated once, cached by (prompt id, first token), and every setting's responses are assembled by lookup
(:func:`assemble`). A backend only has to implement
``continue_from(conversations, first_tokens, max_new_tokens)``; a vLLM backend would send ``prompt_ids + [token]``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from .errors import DataError
from .files import iter_jsonl, write_jsonl
from .tagging import CATEGORY_TOKENS, REFUSE, RESPOND, check_scheme, refusal_tokens, scheme_tokens

FREE = "free"  # cache key of a plain greedy generation (no forced token): models without tokens, and the greedy
              # rule where a non-scheme token is the most likely first token


def _temperature_key(t: float) -> str:
    return f"{float(t):g}"


# ----------------------------------------------------------------------------------------------------- scoring

def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int = 0) -> list[list[int]]:
    """Indices sorted by length, cut into batches of at most ``batch_size`` prompts and (when ``max_tokens`` > 0)
    at most ``max_tokens`` padded tokens (rows × longest row): long prompts travel in small batches, so that
    little of the compute goes to padding."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and (
                not max_tokens or (len(batches[-1]) + 1) * lengths[i] <= max_tokens):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


@torch.no_grad()
def score(model, tokenizer, conversations: Sequence[Sequence[Mapping[str, str]]], scheme: str,
          temperatures: Sequence[float] = (1.0,), batch_size: int = 16, progress: bool = False,
          max_tokens: int = 0) -> list[dict]:
    """Per conversation: ``{"p": {T: {token: p}}, "p_other": {T: max p of a non-scheme token}, "top": str,
    "top_is_scheme": bool}`` at the first response position. Raises DataError when the tokenizer lacks the scheme's
    tokens or there is nothing to score."""
    from .scoring import chat_prompts, left_pad
    from .tokens import require_tokens

    if check_scheme(scheme) == "none":
        raise DataError("the 'none' scheme has no tokens to score; control needs a single or category model")
    if not conversations:
        raise DataError("no prompts to score")
    if not temperatures or any(not (t > 0 and math.isfinite(t)) for t in temperatures):
        raise DataError(f"temperatures must be positive numbers, got {list(temperatures)}")
    tokens = scheme_tokens(scheme)
    ids = require_tokens(tokenizer, scheme)
    encoded = chat_prompts(tokenizer, conversations)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    batches = length_batches([len(e) for e in encoded], batch_size, max_tokens)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="scoring", unit="batch")
    was_training = model.training
    model.eval()
    index = torch.tensor(ids, device=device)
    rows: list[dict] = [{} for _ in encoded]
    for batch in batches:
        input_ids, mask = left_pad([encoded[i] for i in batch], pad)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                       position_ids=positions.to(device), logits_to_keep=1).logits[:, -1, :].float()
        top = logits.argmax(dim=-1).tolist()
        others = torch.ones(logits.shape[-1], dtype=torch.bool, device=device)
        others[index] = False
        per_t = {}
        for t in temperatures:
            probs = torch.softmax(logits / t, dim=-1)
            per_t[_temperature_key(t)] = (probs[:, index].cpu().tolist(),
                                          probs[:, others].max(dim=-1).values.cpu().tolist())
        for row, i in enumerate(batch):
            rows[i] = {"p": {k: dict(zip(tokens, v[0][row])) for k, v in per_t.items()},
                       "p_other": {k: v[1][row] for k, v in per_t.items()},
                       "top": tokenizer.convert_ids_to_tokens(top[row]), "top_is_scheme": top[row] in ids}
    model.train(was_training)
    return rows


# ------------------------------------------------------------------------------------------------------- rules

@dataclass(frozen=True)
class Setting:
    """A control setting: a rule, its threshold(s), a logit bias on refusal tokens, a temperature.

    ``threshold`` and ``bias`` are a number (every refusal token) or a mapping category → number (CoCoNot category
    names or their tokens; categories left out get ``default_threshold`` / no bias).
    """

    name: str
    rule: str = "argmax"  # argmax | threshold
    threshold: float | Mapping[str, float] | None = None
    bias: float | Mapping[str, float] = 0.0
    temperature: float = 1.0
    default_threshold: float = 0.5

    def describe(self) -> dict:
        return asdict(self)


def _category_token(name: str) -> str:
    if name in CATEGORY_TOKENS.values():
        return name
    if name in CATEGORY_TOKENS:
        return CATEGORY_TOKENS[name]
    raise DataError(f"unknown category {name!r}; expected one of {list(CATEGORY_TOKENS)}")


def _per_token(value: float | Mapping[str, float], scheme: str, what: str, default: float) -> dict[str, float]:
    """A number or a category mapping → {refusal token: value}."""
    refusal = refusal_tokens(scheme)
    if isinstance(value, Mapping):
        if scheme != "category":
            raise DataError(f"a per-category {what} needs a category-scheme model (this one is {scheme!r})")
        out = dict.fromkeys(refusal, default)
        for name, v in value.items():
            out[_category_token(name)] = float(v)
        return out
    return dict.fromkeys(refusal, float(value))


def check_setting(setting: Setting, scheme: str, temperatures: Iterable[str] | None = None) -> Setting:
    """Raise DataError for a setting that cannot apply to this scheme's scores."""
    if check_scheme(scheme) == "none":
        raise DataError(f"setting {setting.name!r}: a model without refusal tokens cannot be controlled")
    if setting.rule not in ("argmax", "threshold"):
        raise DataError(f"setting {setting.name!r}: unknown rule {setting.rule!r}; expected argmax or threshold")
    if setting.rule == "threshold":
        if setting.threshold is None:
            raise DataError(f"setting {setting.name!r}: the threshold rule needs a threshold")
        values = _per_token(setting.threshold, scheme, "threshold", setting.default_threshold).values()
        bad = [v for v in values if not 0.0 <= v <= 1.0]
        if bad:
            raise DataError(f"setting {setting.name!r}: thresholds must lie in [0, 1], got {bad}")
    biases = _per_token(setting.bias, scheme, "bias", 0.0).values()
    if any(not math.isfinite(b) for b in biases):
        raise DataError(f"setting {setting.name!r}: biases must be finite numbers")
    key = _temperature_key(setting.temperature)
    if temperatures is not None and key not in set(temperatures):
        raise DataError(f"setting {setting.name!r}: temperature {key} was not scored (scored: {sorted(temperatures)})")
    return setting


def biased(p: Mapping[str, float], p_other: float, bias: Mapping[str, float]) -> tuple[dict[str, float], float]:
    """Exact probabilities after adding ``bias[token]`` to those tokens' logits (see the module docstring)."""
    z = 1.0 + sum(p[t] * (math.exp(b) - 1.0) for t, b in bias.items() if b)
    return {t: (v * math.exp(bias.get(t, 0.0))) / z for t, v in p.items()}, p_other / z


REFUSAL_TOKENS = frozenset([REFUSE, *CATEGORY_TOKENS.values()])


def is_refusal(token: str) -> bool:
    """Whether a decided first token is a refusal token ([respond] and ``free`` are not)."""
    return token in REFUSAL_TOKENS


def _biased_at(row: Mapping, scheme: str, setting: Setting) -> tuple[dict[str, float], float]:
    """p' and p'_other at the setting's temperature T with its bias added before the temperature, as in
    transformers: exp((logit + b) / T) = exp(logit / T) · exp(b / T), so bias b / T on the stored T-probabilities."""
    key = _temperature_key(setting.temperature)
    bias = {t: b / setting.temperature for t, b in _per_token(setting.bias, scheme, "bias", 0.0).items()}
    return biased(row["p"][key], row["p_other"][key], bias)


def p_refusal(row: Mapping, scheme: str, setting: Setting | None = None) -> float:
    """p'(refusal) of one score row under a setting's temperature and bias (plain p at T=1 without a setting)."""
    p, _ = _biased_at(row, scheme, setting or Setting("plain"))
    return sum(p[t] for t in refusal_tokens(scheme))


def refusal_token(row: Mapping, scheme: str) -> str:
    """The refusal token a refusal continues from: [refuse], or c* (most likely category token at T=1, no bias)."""
    tokens = refusal_tokens(scheme)
    if len(tokens) == 1:
        return tokens[0]
    p = row["p"][_temperature_key(1.0)] if _temperature_key(1.0) in row["p"] else next(iter(row["p"].values()))
    return max(tokens, key=lambda t: p[t])


def decide(row: Mapping, scheme: str, setting: Setting) -> str:
    """The first token this setting emits for one score row: a refusal token, [respond], or (``argmax`` only)
    ``free`` when greedy decoding would emit a non-scheme token.

    Ties: a threshold rule refuses at p'(refusal) = t exactly (``>=``), so t = 0 refuses every prompt and t = 1
    refuses only prompts whose p'(refusal) rounds to 1.0 in float32 (the stored probabilities are float32 softmax
    values). Under ``argmax`` a non-scheme token must be strictly more likely than every scheme token."""
    refusal = refusal_tokens(scheme)
    p, p_other = _biased_at(row, scheme, setting)
    star = refusal_token(row, scheme)
    if setting.rule == "argmax":
        if p_other > max(p.values()):
            return FREE
        refuse = max(p[t] for t in refusal) > p[RESPOND]
    else:
        threshold = _per_token(setting.threshold, scheme, "threshold", setting.default_threshold)[star]
        refuse = sum(p[t] for t in refusal) >= threshold
    return star if refuse else RESPOND


def decide_all(rows: Sequence[Mapping], scheme: str, setting: Setting) -> list[str]:
    check_setting(setting, scheme, rows[0]["p"].keys() if rows else None)
    return [decide(r, scheme, setting) for r in rows]


def needed_first_tokens(row: Mapping, scheme: str) -> list[str]:
    """The first tokens that cover every threshold setting and the unbiased greedy rule for this prompt: the
    refusal token and [respond], plus ``free`` (the unforced greedy response) where the top token at T = 1 is not a
    scheme token. A bias or temperature that makes a non-scheme token win elsewhere needs ``free`` for more prompts:
    looking it up then raises a clear error instead of returning a wrong response."""
    tokens = [refusal_token(row, scheme), RESPOND]
    if not row.get("top_is_scheme", True):
        tokens.append(FREE)
    return tokens


def threshold_grid(k: int) -> list[float]:
    """k evenly spaced thresholds over [0, 1] (k=21: 0, 0.05, …, 1)."""
    if k < 2:
        raise DataError(f"a threshold grid needs at least 2 points, got {k}")
    return [round(i / (k - 1), 10) for i in range(k)]


# -------------------------------------------------------------------------------------------------- generation

class Backend(Protocol):
    """Continue each conversation greedily, after forcing ``first_tokens[i]`` (None: no forced token)."""

    def continue_from(self, conversations: Sequence[Sequence[Mapping[str, str]]],
                      first_tokens: Sequence[str | None], max_new_tokens: int) -> list[str]: ...


@dataclass
class HFBackend:
    """transformers ``generate`` (greedy) on left-padded, length-sorted batches.

    ``share_prefill`` (default): the continuations of one prompt (``[refuse]`` and ``[respond]``, and the unforced
    one where it is needed) share one forward pass over the prompt. Each batch of distinct prompts is run once
    without its last token, the key/value cache's rows are repeated once per continuation, and one ``generate`` call
    starts from that cache with each prompt's last token plus its forced token: two of the study's three forward
    passes over a prompt are saved. Off: every (prompt, first token) pair is generated from scratch (the reference;
    bench/generation.py compares the two response by response).
    """

    model: object
    tokenizer: object
    batch_size: int = 16  # distinct prompts per batch (with share_prefill, ≈2× as many sequences are decoded)
    progress: bool = False
    max_tokens: int = 0  # > 0: at most this many padded prompt tokens per batch (see length_batches)
    share_prefill: bool = True
    generated_tokens: int = field(default=0, init=False)  # new tokens produced, for cost accounting
    prompt_tokens: int = field(default=0, init=False)  # prompt (and forced) positions run, padding not counted

    def __post_init__(self):
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise DataError(f"generation batch_size must be a positive integer, got {self.batch_size!r}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 0:
            raise DataError(f"generation max_tokens must be an integer ≥ 0 (0: no cap), got {self.max_tokens!r}")
        if not isinstance(self.share_prefill, bool):
            raise DataError(f"generation share_prefill must be true or false, got {self.share_prefill!r}")

    @torch.no_grad()
    def continue_from(self, conversations, first_tokens, max_new_tokens: int) -> list[str]:
        from .scoring import chat_prompts

        if len(conversations) != len(first_tokens):
            raise DataError("one first token (or None) per conversation")
        tok = self.tokenizer
        forced = {t for t in first_tokens if t is not None}
        vocab = tok.get_vocab()
        missing = sorted(t for t in forced if t not in vocab)
        if missing:
            raise DataError(f"the tokenizer lacks {missing}: was this model trained with that scheme?")
        prompts = chat_prompts(tok, conversations)
        firsts = [None if t is None else vocab[t] for t in first_tokens]
        rows_of: dict[tuple[int, ...], list[int]] = {}  # distinct prompt → the rows that continue it
        for i, ids in enumerate(prompts):
            rows_of.setdefault(tuple(ids) if self.share_prefill else (i,), []).append(i)
        groups = list(rows_of.values())
        batches = length_batches([len(prompts[g[0]]) for g in groups], self.batch_size, self.max_tokens)
        if self.progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="generating", unit="batch")
        texts = [""] * len(prompts)
        self.model.eval()
        for batch in batches:
            if any(len(groups[g]) > 1 for g in batch):  # something to share (else the plain path: no extra call)
                self._shared([groups[g] for g in batch], prompts, firsts, max_new_tokens, texts)
            else:
                rows = [groups[g][0] for g in batch]
                self._generate(rows, [prompts[i] + ([] if firsts[i] is None else [firsts[i]]) for i in rows],
                               None, None, max_new_tokens, texts)
        return texts

    def _generate(self, rows, sequences, cache, prefix, max_new_tokens: int, texts: list[str]) -> None:
        """Greedy continuations of ``sequences``, decoded into ``texts[rows]``. Without ``cache`` they are left-padded
        here; with it, they follow ``prefix`` = (ids, mask), the left-padded tokens the cache already holds."""
        from .scoring import end_of_turn_ids, left_pad

        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        stops = end_of_turn_ids(tok)
        device = next(self.model.parameters()).device
        ids, mask = left_pad(sequences, pad)
        self.prompt_tokens += sum(len(s) for s in sequences)
        if prefix is not None:  # generate reads only the uncached tail, but logits processors may read it all
            ids, mask = torch.cat([prefix[0], ids], dim=1), torch.cat([prefix[1], mask], dim=1)
        out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), cache=cache,
                                  do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=stops,
                                  top_p=None, top_k=None, temperature=None)
        new = out[:, ids.shape[1]:]
        for row, i in enumerate(rows):
            seq = new[row].tolist()
            end = next((k for k, t in enumerate(seq) if t in stops), None)
            self.generated_tokens += len(seq) if end is None else end + 1
            texts[i] = tok.decode(seq if end is None else seq[:end], skip_special_tokens=False)

    def _shared(self, groups, prompts, firsts, max_new_tokens: int, texts: list[str]) -> None:
        """One forward over each distinct prompt but its last token, then ONE ``generate`` call for every
        continuation of the batch, forced and unforced: the unforced tail (the prompt's last token) is left-padded to
        the forced tail's two positions (last token, forced token), so its row holds one masked position between the
        cached prompt and its last token, and position ids follow the mask. The cache is reordered once, not copied.
        (One call per kind of continuation, each from its own copy of the cache, was 1.17× slower with identical
        responses: bench/generation.py, "one generate call per kind".)"""
        ids, mask, cache = self._prefill(groups, prompts)
        self._continue(groups, prompts, firsts, {True, False}, cache, ids, mask, max_new_tokens, texts)

    def _prefill(self, groups, prompts, cache=None):
        """The shared forward over each group's prompt but its last token, left-padded, into ``cache`` (None: a new
        dynamic one): returns (ids, mask, the filled cache)."""
        from .scoring import left_pad

        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = next(self.model.parameters()).device
        ids, mask = left_pad([prompts[g[0]][:-1] for g in groups], pad)
        self.prompt_tokens += sum(len(prompts[g[0]]) - 1 for g in groups)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                         cache=cache, use_cache=True, logits_to_keep=1)
        return ids, mask, out.cache

    def _continue(self, groups, prompts, firsts, kinds, cache, ids, mask, max_new_tokens: int,
                  texts: list[str]) -> None:
        """One ``generate`` call from ``cache`` over the continuations whose kind (forced: True, unforced: False) is
        in ``kinds``; the cache's rows are reordered (and repeated) to one per continuation, in place."""
        pairs = [(slot, i) for slot, g in enumerate(groups) for i in g if (firsts[i] is not None) in kinds]
        index = torch.tensor([slot for slot, _ in pairs])
        cache.reorder_cache(index.to(next(self.model.parameters()).device))
        rows = [i for _, i in pairs]
        self._generate(rows, [prompts[i][-1:] + ([] if firsts[i] is None else [firsts[i]]) for i in rows], cache,
                       (ids[index], mask[index]), max_new_tokens, texts)


class GenerationCache:
    """Responses keyed by (prompt id, first token), in a JSONL file; each key is generated at most once.

    Rows: ``{"id", "first_token", "text", "made_by"}`` (``first_token`` is the forced token, or ``free``;
    ``made_by`` is the ``identity`` that produced the text: model, ``max_new_tokens``, dtype). A row made by another
    identity is never read: it counts as missing and is generated again (``stale`` counts them). ``ensure``
    generates only the missing keys and rewrites the file atomically.
    """

    def __init__(self, path: str | os.PathLike | None = None, identity: Mapping[str, object] | None = None):
        self.path = Path(path) if path else None
        self.identity = dict(identity or {})
        self.entries: dict[tuple[str, str], str] = {}
        self.stale = 0
        if self.path and self.path.is_file():
            for n, row in iter_jsonl(self.path):
                try:
                    key, text, made_by = (row["id"], row["first_token"]), row["text"], row.get("made_by", {})
                except KeyError as e:
                    raise DataError(f"{self.path}:{n}: not a generation-cache row (no {e})") from None
                if made_by != self.identity:
                    self.stale += 1
                    continue
                self.entries[key] = text

    def ensure(self, backend: Backend, prompts: Mapping[str, Sequence[Mapping[str, str]]],
               keys: Iterable[tuple[str, str]], max_new_tokens: int) -> int:
        """Generate every missing (id, first token) key; returns how many were generated."""
        if "max_new_tokens" in self.identity and int(self.identity["max_new_tokens"]) != int(max_new_tokens):
            raise DataError(f"this cache holds {self.identity['max_new_tokens']}-token responses, asked for "
                            f"{max_new_tokens}: open it with the identity of the run")
        missing = sorted({k for k in keys if k not in self.entries})
        unknown = [i for i, _ in missing if i not in prompts]
        if unknown:
            raise DataError(f"no prompt for ids {unknown[:5]}")
        if not missing:
            return 0
        texts = backend.continue_from([prompts[i] for i, _ in missing],
                                      [None if t == FREE else t for _, t in missing], max_new_tokens)
        self.entries.update(zip(missing, texts))
        if self.path:
            self.save()
        return len(missing)

    def lookup(self, prompt_id: str, first_token: str) -> str:
        try:
            return self.entries[(prompt_id, first_token)]
        except KeyError:
            raise DataError(f"no cached generation for ({prompt_id!r}, {first_token!r})") from None

    def save(self) -> None:
        write_jsonl(self.path, ({"id": i, "first_token": t, "text": text, "made_by": self.identity}
                                for (i, t), text in sorted(self.entries.items())))


def assemble(ids: Sequence[str], first_tokens: Sequence[str], lookup: Callable[[str, str], object]) -> list:
    """Each prompt's cached value (text, label …) for the first token a setting chose."""
    return [lookup(i, t) for i, t in zip(ids, first_tokens)]
