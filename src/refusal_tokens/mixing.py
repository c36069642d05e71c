"""The training-mix builder: a CoCoNot-style SFT mix from ``params.yaml``, decontaminated and split.

A mix of ``size`` rows holds ``round(size × refusal_proportion)`` refusals, spread over the five CoCoNot
categories by ``category_weights`` (round-robin over each category's subcategories, so every subcategory is
covered), and answers: ``contrast_share`` of them from contrast prompts (they look like refusals but should be
answered: CoCoNot-pref ``chosen``, FalseQA true premises) and ``general_share`` from general chat.

The paper trains on CoCoNot's SFT split (Hub only). ``primary_sources`` lists it; when none of those can be
loaded the builder falls back to ``fallback_sources`` (the stand-ins) and says so in the mix card.
``contrast_sources`` are loaded in either case and feed both pools: the dual-use pairs
(:mod:`refusal_tokens.dual_use`), whose harmful and harmless sides share a subcategory.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from . import sources as S
from .config import mix_name  # 0.5 → r50: the refusal proportion is the grid axis of the mixes
from .files import atomic_dir, jsonl_text
from .decontaminate import EvalIndex, decontaminate, normalise, overlap_count
from .errors import DataError
from .sources import GENERAL, Record
from .tagging import SCHEMES, tag, write_response

SPLITS = ("train", "validation")
CHARS_PER_TOKEN = 4  # ≈4 characters per BPE token for English text: the budget is approximate, not exact


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def truncate(text: str, max_tokens: int) -> str:
    """Cut ``text`` to ≈``max_tokens`` at a sentence end (or, failing that, a word boundary)."""
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    head = text[:limit]
    cut = max(head.rfind(". "), head.rfind("! "), head.rfind("? "), head.rfind("\n"))
    if cut >= limit // 2:
        return head[:cut + 1].rstrip()
    space = head.rfind(" ")
    return (head[:space] if space > 0 else head).rstrip()


@dataclass(frozen=True)
class MixSpec:
    """One mix, from values the schema has checked (``config.Data``: ranges, shares summing to 1, categories,
    registered sources)."""

    name: str
    size: int  # rows in train + validation
    refusal_proportion: float  # share of rows whose response is a refusal
    category_weights: Mapping[str, float]  # relative weight of each CoCoNot category among the refusals
    contrast_share: float  # share of the answer rows drawn from contrast prompts
    general_share: float  # share of the answer rows drawn from general chat (contrast + general = 1)
    max_response_tokens: int  # responses are truncated to ≈ this many tokens
    max_prompt_tokens: int  # rows with longer prompts are dropped (they cannot be cut meaningfully)
    val_fraction: float  # share of each (category, refuse) group held out for validation
    seed: int
    primary_sources: Sequence[str] = ("coconot_train",)
    fallback_sources: Sequence[str] = ()
    general_sources: Sequence[str] = ()
    contrast_sources: Sequence[str] = ()  # always loaded: rows for both pools (e.g. dual-use pairs)
    # > 0: this many rows come from contrast_sources before the category allocation (half refusals, half answers;
    # answers only where the mix has contrast answers); 0: they compete in the round-robin like any subcategory
    contrast_source_rows: int = 0
    fuzzy_threshold: float = 0.8


def specs_from_params(params: Mapping) -> list[MixSpec]:
    """One MixSpec per refusal proportion in ``params['refusal_proportions']`` (the first is the main mix), then
    one per entry of ``params['extra_mixes']`` (name → overrides of refusal_proportion / contrast_share /
    general_share, e.g. the contrast-data ablation ``r50_nocontrast``).

    ``params`` is the data section as the schema checked it (``config.Data``: the notebook's parameter guard, or
    ``config.check_section("data", …)``); nothing is checked again here."""
    common = {k: params[k] for k in ("size", "category_weights", "contrast_share", "general_share",
                                     "max_response_tokens", "max_prompt_tokens", "val_fraction", "seed",
                                     "primary_sources", "fallback_sources", "general_sources")}
    common["contrast_sources"] = tuple(params.get("contrast_sources") or ())
    common["contrast_source_rows"] = params.get("contrast_source_rows", 0)
    specs = [MixSpec(name=mix_name(p), refusal_proportion=p, **common) for p in params["refusal_proportions"]]
    for name, overrides in (params.get("extra_mixes") or {}).items():
        specs.append(MixSpec(name=name, **{**common, **{k: v for k, v in overrides.items() if v is not None}}))
    return specs


def decontamination_sets(eval_sets: Mapping[str, Sequence[Record]], training_part: Sequence[Record]
                         ) -> tuple[dict[str, list[Record]], dict[str, int]]:
    """The evaluation sets to decontaminate against, without the prompts of CoCoNot's training part.

    CoCoNot's original set is split into a training part and a held-out test part (``sources.coconot_parts``);
    the test part is the benchmark, the training part is training data by design. Other files that contain the
    whole CoCoNot set (the paper's temporal-eval CSV) would otherwise remove the training part again. Returns the
    filtered sets and, per set, how many records were left out for that reason.
    """
    train_keys = {normalise(r.prompt) for r in training_part}
    kept: dict[str, list[Record]] = {}
    removed: dict[str, int] = {}
    for name, records in eval_sets.items():
        kept[name] = [r for r in records if normalise(r.prompt) not in train_keys]
        if len(kept[name]) != len(records):
            removed[name] = len(records) - len(kept[name])
    return kept, removed


# ---------------------------------------------------------------------------------------------------------


@dataclass
class Pools:
    """Candidate rows, after responses are written, truncation, decontamination and de-duplication."""

    refuse: dict[str, dict[str, list[Record]]]  # category → subcategory → records
    contrast: dict[str, dict[str, list[Record]]]
    general: dict[str, list[Record]]  # source → records
    used_sources: list[str]
    unavailable: dict[str, str]
    decontamination: dict[str, dict[str, int]]
    dropped: dict[str, int] = field(default_factory=dict)


def _load_sources(names: Sequence[str], used: list[str], unavailable: dict[str, str], mirror, cache) -> list[Record]:
    """Every record of the sources that load; the others are recorded in ``unavailable`` with the reason."""
    records: list[Record] = []
    for name in names:
        loaded, status = S.try_load(name, mirror, cache)
        if loaded is None:
            unavailable[name] = status
        else:
            records += loaded
            used.append(name)
    return records


def build_pools(spec: MixSpec, index: EvalIndex, mirror=None, cache=None) -> Pools:
    unavailable: dict[str, str] = {}
    used: list[str] = []
    records = _load_sources(spec.primary_sources, used, unavailable, mirror, cache)
    if not records:  # the fallback stand-ins are only used when no primary source could be loaded
        records = _load_sources(spec.fallback_sources, used, unavailable, mirror, cache)
    if not records and spec.refusal_proportion > 0:
        raise DataError(f"mix {spec.name!r}: no refusal source could be loaded: {unavailable}")
    # on top of primary or fallback: both sides of a contrast pair
    records += _load_sources(spec.contrast_sources, used, unavailable, mirror, cache)
    general = _load_sources(spec.general_sources, used, unavailable, mirror, cache)
    return make_pools(records + general, spec, index, used, unavailable)


def make_pools(records: Sequence[Record], spec: MixSpec, index: EvalIndex, used: Sequence[str] = (),
               unavailable: Mapping[str, str] | None = None) -> Pools:
    """Write missing refusals, apply the length limits, decontaminate, de-duplicate, and group the rows."""
    dropped: Counter[str] = Counter()
    prepared: list[Record] = []
    for record in records:
        if approx_tokens(record.prompt) > spec.max_prompt_tokens:
            dropped["prompt longer than max_prompt_tokens"] += 1
            continue
        if not record.should_refuse and not record.response:
            dropped["answer row without a response"] += 1
            continue
        record = write_response(record, spec.seed)
        short = truncate(record.response, spec.max_response_tokens)
        if short != record.response:
            dropped["responses truncated (kept)"] += 1
            record = replace(record, response=short, meta={**record.meta, "truncated": "yes"})
        prepared.append(record)

    clean, report = decontaminate(prepared, index)
    refuse: dict[str, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    contrast: dict[str, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    general_pool: dict[str, list[Record]] = defaultdict(list)
    seen: set[str] = set()
    for record in clean:
        key = normalise(record.prompt)
        if key in seen:  # the same prompt twice (possibly with opposite labels) would teach noise
            dropped["duplicate prompt across training sources"] += 1
            continue
        seen.add(key)
        if record.should_refuse:
            refuse[record.category][record.subcategory].append(record)
        elif record.category == GENERAL:
            general_pool[record.source].append(record)
        else:
            contrast[record.category][record.subcategory].append(record)
    return Pools(refuse, contrast, general_pool, list(used), dict(unavailable or {}), report, dict(dropped))


def _allocate(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder rounding of ``total × w / Σw`` (exact total, deterministic ties by name)."""
    positive = {k: w for k, w in sorted(weights.items()) if w > 0}
    if total == 0 or not positive:
        return {k: 0 for k in positive}
    norm = sum(positive.values())
    raw = {k: total * w / norm for k, w in positive.items()}
    out = {k: int(math.floor(v)) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (-(raw[k] - out[k]), k))[: total - sum(out.values())]:
        out[k] += 1
    return out


def _allocate_capped(total: int, weights: Mapping[str, float], capacity: Mapping[str, int], what: str) -> dict[str, int]:
    """Like :func:`_allocate`, but no key gets more than its capacity; the excess goes to the others."""
    if total > sum(capacity.get(k, 0) for k, w in weights.items() if w > 0):
        raise DataError(f"{what}: {total} rows requested but only "
                        f"{ {k: capacity.get(k, 0) for k in sorted(weights)} } available after decontamination")
    fixed: dict[str, int] = {}
    while True:
        free = {k: w for k, w in weights.items() if k not in fixed}
        out = {**fixed, **_allocate(total - sum(fixed.values()), free)}
        over = [k for k in out if out[k] > capacity.get(k, 0) and k not in fixed]
        if not over:
            return out
        for k in over:
            fixed[k] = capacity.get(k, 0)


def _round_robin(groups: Mapping[str, list[Record]], n: int, rng: random.Random, what: str) -> list[Record]:
    available = sum(len(v) for v in groups.values())
    if n > available:
        raise DataError(f"{what}: {n} rows requested but only {available} available after decontamination "
                        f"({ {k: len(v) for k, v in sorted(groups.items())} }); lower size or this weight")
    queues = {k: rng.sample(v, len(v)) for k, v in sorted(groups.items())}
    picked: list[Record] = []
    while len(picked) < n:
        for key in list(queues):
            if len(picked) == n:
                break
            if queues[key]:
                picked.append(queues[key].pop())
    return picked


@dataclass
class Mix:
    spec: MixSpec
    splits: dict[str, list[Record]]
    pools: Pools

    def composition(self) -> list[dict]:
        rows = []
        for split, records in self.splits.items():
            counts = Counter((r.category, r.subcategory, r.should_refuse, r.source) for r in records)
            for (category, subcategory, refuse, source), n in sorted(counts.items()):
                rows.append({"split": split, "category": category, "subcategory": subcategory,
                             "should_refuse": refuse, "source": source, "rows": n})
        return rows


@dataclass
class _Split:
    refuse: dict[str, list[Record]]  # "category / subcategory" → records
    contrast: dict[str, list[Record]]


def _split_off(pools: Pools, names: set[str]) -> tuple[_Split, Pools]:
    """The rows of sources ``names`` (refusals, contrast answers; keyed by category and subcategory) and the pools
    without them."""
    taken = _Split({}, {})
    rest: dict[str, dict] = {"refuse": {}, "contrast": {}}
    for side in ("refuse", "contrast"):
        for category, subs in getattr(pools, side).items():
            for sub, records in subs.items():
                mine = [r for r in records if r.source in names]
                if mine:
                    getattr(taken, side)[f"{category} / {sub}"] = mine
                others = [r for r in records if r.source not in names]
                if others:
                    rest[side].setdefault(category, {})[sub] = others
    return taken, replace(pools, refuse=rest["refuse"], contrast=rest["contrast"])


def build_mix(spec: MixSpec, index: EvalIndex, pools: Pools | None = None, mirror=None, cache=None) -> Mix:
    pools = everything = pools or build_pools(spec, index, mirror, cache)
    rng = random.Random(spec.seed)
    n_refuse = round(spec.size * spec.refusal_proportion)
    n_answer = spec.size - n_refuse
    n_contrast = round(n_answer * spec.contrast_share)
    n_general = n_answer - n_contrast

    chosen: list[Record] = []
    if spec.contrast_source_rows:  # the pairs first, half refusals, half answers; the allocation below gets the rest
        pairs, pools = _split_off(pools, set(spec.contrast_sources))
        n_pair_refuse = min(spec.contrast_source_rows // 2, n_refuse)
        n_pair_answer = min(spec.contrast_source_rows - n_pair_refuse, n_contrast)
        chosen += _round_robin(pairs.refuse, n_pair_refuse, rng, f"mix {spec.name!r}: contrast-source refusals")
        chosen += _round_robin(pairs.contrast, n_pair_answer, rng, f"mix {spec.name!r}: contrast-source answers")
        n_refuse, n_contrast = n_refuse - n_pair_refuse, n_contrast - n_pair_answer
    # CoCoNot's categories are uneven (82 humanizing vs 395 safety prompts): cap each at what exists, redistribute
    refuse_capacity = {c: sum(len(v) for v in pools.refuse.get(c, {}).values()) for c in spec.category_weights}
    for category, n in _allocate_capped(n_refuse, spec.category_weights, refuse_capacity,
                                        f"mix {spec.name!r}: refusals").items():
        chosen += _round_robin(pools.refuse.get(category, {}), n, rng, f"mix {spec.name!r}: refusals of {category!r}")
    contrast_weights = {c: w for c, w in spec.category_weights.items() if pools.contrast.get(c)}
    if n_contrast and not contrast_weights:
        raise DataError(f"mix {spec.name!r}: contrast rows requested but no contrast source is available")
    capacity = {c: sum(len(v) for v in pools.contrast[c].values()) for c in contrast_weights}
    # contrast data is uneven (none exists for two categories, few for unsupported): cap and redistribute
    for category, n in _allocate_capped(n_contrast, contrast_weights, capacity,
                                        f"mix {spec.name!r}: contrast rows").items():
        chosen += _round_robin(pools.contrast[category], n, rng, f"mix {spec.name!r}: contrast rows of {category!r}")
    chosen += _round_robin(pools.general, n_general, rng, f"mix {spec.name!r}: general-chat rows")
    if not chosen:
        raise DataError(f"mix {spec.name!r}: the mix is empty")

    groups: dict[tuple[str, bool], list[Record]] = defaultdict(list)
    for record in chosen:
        groups[(record.category, record.should_refuse)].append(record)
    splits: dict[str, list[Record]] = {"train": [], "validation": []}
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda r: (r.source, r.id))
        rng.shuffle(members)
        n_val = round(len(members) * spec.val_fraction)
        splits["validation"] += members[:n_val]
        splits["train"] += members[n_val:]
    for split in SPLITS:
        rng.shuffle(splits[split])
        if not splits[split]:
            raise DataError(f"mix {spec.name!r}: the {split} split is empty; raise size or adjust val_fraction")
    overlap = overlap_count((r.prompt for rs in splits.values() for r in rs), index)
    if overlap:
        raise DataError(f"mix {spec.name!r}: {overlap} rows still match evaluation prompts")  # cannot happen
    return Mix(spec, splits, everything)


def write_mix(mix: Mix, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/<mix>/<scheme>/<split>.jsonl`` for every scheme, plus ``spec.json``, atomically.

    Everything goes to a temporary sibling folder first and is renamed into place at the end, so a failure
    leaves no partial mix behind.
    """
    final = Path(out_dir) / mix.spec.name
    with atomic_dir(final) as tmp:
        for scheme in SCHEMES:
            (tmp / scheme).mkdir()
            for split, records in mix.splits.items():
                (tmp / scheme / f"{split}.jsonl").write_text(
                    jsonl_text((tag(record, scheme) for record in records), sort_keys=False), encoding="utf-8")
        (tmp / "spec.json").write_text(json.dumps(asdict(mix.spec), indent=2, default=list) + "\n")
    return final


def mix_metrics(mix: Mix, eval_overlap: int) -> dict:
    """The numbers ``reports/metrics/data.json`` records for one mix."""
    from .tagging import token_counts

    by_category: dict[str, dict[str, int]] = {}
    for records in mix.splits.values():
        for r in records:
            row = by_category.setdefault(r.category, {"refuse": 0, "answer": 0})
            row["refuse" if r.should_refuse else "answer"] += 1
    every = [r for rs in mix.splits.values() for r in rs]
    return {
        "refusal_proportion": mix.spec.refusal_proportion,
        "rows": {split: len(rs) for split, rs in mix.splits.items()},
        "rows_by_category": dict(sorted(by_category.items())),
        "rows_by_scheme_token": {s: token_counts([tag(r, s) for r in every], s) for s in SCHEMES},
        "eval_overlap": eval_overlap,
    }
