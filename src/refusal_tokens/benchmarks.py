"""Benchmarks: sample the prompts, score and generate once per model, judge every generation, and count.

Stages (``dvc.yaml``):

- ``generate@<model>`` — ``python -m refusal_tokens.benchmarks generate --model M``. For every benchmark in
  ``params.yaml: generate.benchmarks`` it samples ``score`` prompts (stratified over (should_refuse, category),
  seeded) and writes ``data/generations/<model>/<benchmark>/``:
  ``prompts.jsonl``; ``scores.jsonl`` (p(scheme tokens) at each temperature, models with tokens only);
  ``cache.jsonl`` (greedy responses keyed by (id, first token), for the first ``generate`` prompts: the refusal
  token and [respond] for models with tokens, a plain greedy response otherwise); ``cache.sys-<name>.jsonl`` /
  ``scores.sys-<name>.jsonl`` for the system-prompt baseline. A Hub-only benchmark that cannot be reached is
  recorded as ``not run: …`` in ``status.json``, never as a number. The validation split of the training mix is
  scored too (threshold selection), never generated.
- ``judge`` — ``python -m refusal_tokens.benchmarks judge``: every judge in ``judge.judges`` labels every cached
  generation into ``data/labels/<judge>/<model>/<benchmark>/<cache>.jsonl`` (keyed like the cache). Re-judging
  reads the caches; it never generates. It also writes the judge card (``reports/judge_card.md``).

Any control setting's responses and labels are then lookups (:mod:`refusal_tokens.control`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .files import atomic_dir, read_jsonl, write_jsonl, write_texts
from .errors import DataError, SourceUnavailable

VALIDATION = "validation"

# Published numbers for the refusal-token Llama-3-8B model ("Refuse-Llama"; judge Llama-3.3-70B), Alagharu et al.,
# arXiv 2603.13359, Table 1 — refusal rate in %, keyed by (benchmark, split) as in this study's table.
REFERENCE = {
    ("coconot_original", "should refuse"): 94.01, ("coconot_contrast", "should answer"): 11.87,
    ("xstest", "unsafe"): 94.50, ("xstest", "safe"): 28.00, ("advbench", "harmful"): 94.23,
    ("do_not_answer", "harmful"): 87.01, ("harmfulqa", "harmful"): 66.07, ("sorry_bench_partial", "harmful"): 84.77,
    ("wildguardtest", "unharmful"): 9.52, ("wildguardtest", "harmful"): 59.02,
    ("wildjailbreak_eval", "benign"): 4.76, ("wildjailbreak_eval", "harmful"): 20.50,
    ("or_bench_hard", "over-refusal"): 23.88, ("or_bench_toxic", "toxic"): 85.95,
}
# How each benchmark's should_refuse label reads as a table split.
SPLIT_NAMES = {
    "coconot_original": ("should answer", "should refuse"), "coconot_contrast": ("should answer", "should refuse"),
    "xstest": ("safe", "unsafe"), "wildguardtest": ("unharmful", "harmful"),
    "wildjailbreak_eval": ("benign", "harmful"), "or_bench_hard": ("over-refusal", "toxic"),
    "or_bench_toxic": ("over-refusal", "toxic"), "benign_instructions": ("ordinary", "harmful"),
}


def split_name(benchmark: str, should_refuse: bool) -> str:
    return SPLIT_NAMES.get(benchmark, ("benign", "harmful"))[int(bool(should_refuse))]


# ------------------------------------------------------------------------------------------------- io helpers

# -------------------------------------------------------------------------------------------------- sampling

def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


STRATIFY_BY: tuple[str, ...] = ("should_refuse", "category")


def stratified(rows: Sequence[Mapping], n: int, seed: int, by: Sequence[str] = STRATIFY_BY) -> list[Mapping]:
    """Up to ``n`` rows, round-robin over the groups of ``by`` (default (should_refuse, category)) in a seeded
    order, so that every prefix of the result is itself stratified (the generated subset is the first
    ``generate`` rows). XSTest uses ``by = (should_refuse, category, subcategory)``: balanced over its prompt types.

    The sample is *category-balanced*: each group gets an equal share until it runs out, whatever its share of
    the benchmark (CoCoNot original: safety concerns 39% of prompts, 20% of a 150-prompt sample). A rate on it is
    the unweighted mean over categories, not the benchmark's own rate (README: Deviations)."""
    groups: dict[tuple, list[Mapping]] = defaultdict(list)
    for row in rows:
        groups[tuple(bool(row[k]) if k == "should_refuse" else str(row[k]) for k in by)].append(row)
    queues = [sorted(g, key=lambda r: _rank(seed, r["id"])) for _, g in sorted(groups.items())]
    out: list[Mapping] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def weights_fingerprint(folder: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 over each weight file's name, size, first and last MiB: cheap at any model size (8B weights are
    16 GB), and different for retrained weights in the same folder."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")) + sorted(Path(folder).glob("*.bin")):
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}:".encode())
        with path.open("rb") as f:
            digest.update(f.read(chunk))
            f.seek(max(0, size - chunk))
            digest.update(f.read(chunk))
    return digest.hexdigest()[:16]


def benchmark_rows(source: str, mirror=None) -> list[dict]:
    """A benchmark's prompts as plain rows (raises SourceUnavailable for an unreachable Hub-only set)."""
    from .sources import load

    return [{"id": r.id, "benchmark": source, "prompt": r.prompt,
             "conversation": list(r.conversation or ()) + [{"role": "user", "content": r.prompt}],
             "category": r.category, "subcategory": r.subcategory, "should_refuse": bool(r.should_refuse)}
            for r in load(source, mirror)]


def validation_rows(path: str | os.PathLike) -> list[dict]:
    """The training mix's validation split as benchmark rows (the threshold is chosen here, not on test sets)."""
    return [{"id": r["id"], "benchmark": VALIDATION, "prompt": r["prompt"][-1]["content"],
             "conversation": list(r["prompt"]), "category": r["category"], "subcategory": r.get("subcategory", ""),
             "should_refuse": bool(r["should_refuse"])} for r in read_jsonl(path)]


def with_system(conversation: Sequence[Mapping[str, str]], system: str) -> list[dict]:
    return [{"role": "system", "content": system}] + [m for m in conversation if m["role"] != "system"]


# ----------------------------------------------------------------------------------------- generate (stage)

def generate_model(model_name: str, params: Mapping, root: str | os.PathLike = ".", mirror=None,
                   progress: bool = True, loader: Callable[[str], list[dict]] | None = None) -> dict:
    """Score and generate every benchmark for one model into ``<out>/<model>/`` (written atomically).

    ``loader(source) → rows`` replaces :func:`benchmark_rows` (the smoke pipeline's toy benchmarks)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import control
    from .tokens import require_tokens

    g = params["generate"]
    if model_name not in g["models"]:
        raise DataError(f"unknown model {model_name!r}; params.yaml generate.models has {sorted(g['models'])}")
    spec = g["models"][model_name]
    root = Path(root)
    folder = root / g["models_root"] / spec["path"]
    if not (folder / "config.json").is_file():
        raise DataError(f"{folder} holds no model (config.json missing): run `dvc repro` for it first")
    scheme = spec["scheme"]
    torch.manual_seed(0)
    if g.get("torch_threads"):
        torch.set_num_threads(int(g["torch_threads"]))
    device = g.get("device", "auto")  # auto | cpu | cuda (config.Generate)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32  # bf16 is emulated (slow) on this CPU
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if scheme != "none":
        require_tokens(tokenizer, scheme)  # fail before any work if the model lacks its scheme's tokens
    # Every input is read before the model is loaded or anything written: a missing or changed file stops
    # the stage at once, with no output.
    jobs: list[tuple[str, list[dict], int]] = []
    status: dict[str, str] = {}
    if scheme != "none":
        validation_mix = spec.get("validation_mix") or g["validation_mix"]  # a model's own mix (the ablation)
        mix = root / g["mixes_dir"] / validation_mix / scheme / "validation.jsonl"
        if not mix.is_file():
            raise DataError(f"{mix} not found: the validation split of mix {validation_mix!r} is needed to "
                            "choose thresholds (run `dvc repro data_tagging`)")
        jobs.append((VALIDATION, validation_rows(mix), 0))
    chosen = spec.get("benchmarks")  # a subset (the ablation model: only what its comparison reads), or all
    for name, b in g["benchmarks"].items():
        if chosen is not None and name not in chosen:
            continue
        try:
            source = b.get("source") or name
            all_rows = loader(source) if loader else benchmark_rows(source, mirror)
            rows = stratified(all_rows, int(b["score"]), int(g["seed"]), b.get("stratify_by") or STRATIFY_BY)
        except SourceUnavailable as error:
            if not b.get("hub_only"):  # a mirrored benchmark must be there: no silent "not run"
                raise DataError(f"generate.benchmarks.{name}: {error}. It is not declared hub_only, so its file "
                                "must be in the offline mirror or the cache (REFUSAL_TOKENS_MIRROR)") from None
            status[name] = f"not run: {error}"
            continue
        # `responses: false` on a model: score only (the ablation model is read from its token, never its text)
        jobs.append((name, rows, int(b["generate"]) if spec.get("responses", True) else 0))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device)
    temperatures = [float(t) for t in g["temperatures"]]
    backend = control.HFBackend(model, tokenizer, batch_size=g["batch_size"], progress=progress,
                                share_prefill=g.get("share_prefill", True), max_tokens=g.get("max_tokens", 0))
    systems = {name: text for name, text in g.get("system_prompts", {}).items()}
    sys_models, sys_benchmarks = set(g.get("system_prompt_models", ())), set(g.get("system_prompt_benchmarks", ()))
    counts, started = {}, time.perf_counter()
    # what a cached response depends on besides (prompt, first token): a cache made otherwise is never read
    identity = {"model": model_name, "folder": str(Path(g["models_root"]) / spec["path"]),
                "weights": weights_fingerprint(folder), "max_new_tokens": int(g["max_new_tokens"]),
                "dtype": str(dtype).removeprefix("torch."), "share_prefill": backend.share_prefill}
    out = root / g["out"] / model_name
    with atomic_dir(out) as tmp:
        for name, rows, n_generate in jobs:
            t0 = time.perf_counter()
            bench = tmp / name
            write_jsonl(bench / "prompts.jsonl", [{**r, "generate": i < n_generate} for i, r in enumerate(rows)])
            variants = {"": None} | ({f".sys-{k}": v for k, v in systems.items()}
                                     if model_name in sys_models and name in sys_benchmarks else {})
            main_scores: list[dict] = []  # the benchmark's own scores (not a system-prompt variant's)
            for suffix, system in variants.items():
                # The system-prompt baseline covers the generated prefix only (its points are judged from text).
                subset = rows[:n_generate] if system else rows
                convs = {r["id"]: (with_system(r["conversation"], system) if system else r["conversation"])
                         for r in subset}
                scores = []
                if scheme != "none":
                    scored = control.score(model, tokenizer, list(convs.values()), scheme, temperatures,
                                           batch_size=int(g["score_batch_size"]), progress=progress,
                                           max_tokens=int(g.get("score_max_tokens", 0)))
                    scores = [{"id": i, **s} for i, s in zip(convs, scored)]
                    write_jsonl(bench / f"scores{suffix}.jsonl", scores)
                    if not suffix:
                        main_scores = scores
                gen_ids = [r["id"] for r in rows[:n_generate]]
                if not gen_ids or (suffix and scheme != "none"):
                    continue  # a model with tokens answers a system prompt through its token: scores suffice
                by_id = {s["id"]: s for s in scores}
                keys = [(i, t) for i in gen_ids
                        for t in (control.needed_first_tokens(by_id[i], scheme) if scheme != "none" else [control.FREE])]
                cache = control.GenerationCache(bench / f"cache{suffix}.jsonl", identity)
                cache.ensure(backend, convs, keys, int(g["max_new_tokens"]))
            status[name] = "ok"
            free_tops = sum(not s.get("top_is_scheme", True) for s in main_scores)
            counts[name] = {"scored": len(rows) if scheme != "none" else 0, "generated_prompts": min(n_generate, len(rows)),
                            "top_not_scheme": free_tops,  # prompts whose most likely first token is no scheme token
                            "seconds": round(time.perf_counter() - t0, 1)}
        meta = {"model": model_name, "folder": str(folder), "scheme": scheme, "status": status, "counts": counts,
                "generated_tokens": backend.generated_tokens, "seconds": round(time.perf_counter() - started, 1),
                "generation": {"decoding": "greedy", "max_new_tokens": int(g["max_new_tokens"]),
                               "temperatures_scored": temperatures, "dtype": str(dtype).removeprefix("torch."),
                               "device": str(next(model.parameters()).device)},
                "params": dict(g)}
        (tmp / "run.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


# -------------------------------------------------------------------------------------------- judge (stage)

def judge_gold(params: Mapping, root: str | os.PathLike = ".", records=None, mirror=None) -> dict:
    """What the judge card and the learned judges are built from: XSTest's records, the noncompliance gold items
    (CoCoNot-pref audited + the refusal templates; None when ``records`` are passed in, as the smoke run does
    with toy records), their description, and the :class:`judge.Truncator` for 16-token openings (the base
    model's tokenizer, ``generate.models_root``/base, or a word-count approximation where it is missing)."""
    from .judge import AUDIT_PATH, Truncator, coconot_pref_pairs, noncompliance_description, noncompliance_items, \
        read_audit

    j, g, root = params["judge"], params["generate"], Path(root)
    base = Path(g["models_root"]) / "base"
    out = {"records": records, "noncompliance": None, "description": "",
           "truncate": Truncator(g["max_new_tokens"], root / base, shown_as=str(base))}
    if records is None:
        from .sources import load

        mirror = mirror or os.environ.get("REFUSAL_TOKENS_MIRROR")
        out["records"] = load("xstest_completions", mirror)
        pairs, sha = coconot_pref_pairs(mirror)
        audit = read_audit(root / j["audit"] if j.get("audit") else AUDIT_PATH)
        out["noncompliance"] = noncompliance_items(pairs, audit, sha)
        out["description"] = noncompliance_description(pairs, audit)
    return out


def prepare_learned(params: Mapping, root: str | os.PathLike = ".", gold: Mapping | None = None) -> dict:
    """Train every ``learned`` judge of ``judge.judges`` / ``judge.card_judges`` on the tuning part of the gold sets
    (unless its model file already holds a model trained on exactly that data with the same C); returns, per
    model file, its training record (data sha256, counts, 5-fold CV)."""
    from .judge import LEARNED_C, train_learned_judge, training_examples, training_sha256, xstest_items

    j, root = params["judge"], Path(root)
    specs = {spec["path"]: spec for spec in _with_members([*j["judges"], *j["card_judges"]])
             if spec.get("kind", spec.get("name")) == "learned" and "path" in spec}
    if not specs:
        return {}
    gold = gold or judge_gold(params, root)
    items = [i for i in xstest_items(gold["records"]) + list(gold["noncompliance"] or []) if i["part"] == "tune"]
    data_sha = training_sha256(training_examples(items, gold["truncate"]))
    done = {}
    for path, spec in specs.items():
        c, file = float(spec.get("c", LEARNED_C)), root / path
        try:
            old = json.loads(file.read_text(encoding="utf-8"))
            fresh = old["training"]["data_sha256"] == data_sha and old["c"] == c
        except (OSError, ValueError, KeyError, TypeError):
            fresh = False
        done[path] = old["training"] if fresh else train_learned_judge(file, items, gold["truncate"], c,
                                                                       gold["truncate"].method)
    return done


def _with_members(specs: Sequence[Mapping]) -> list[Mapping]:
    """Judge specs and, for an ``any`` judge, its member specs (recursively)."""
    out = []
    for spec in specs:
        out.append(spec)
        if spec.get("kind", spec.get("name")) == "any" and isinstance(spec.get("of"), (list, tuple)):
            out += _with_members([m for m in spec["of"] if isinstance(m, Mapping)])
    return out


def _resolved(spec: Mapping, root: Path) -> dict:
    """``spec`` with its model paths (``hf`` backend, ``learned``; an ``any`` judge's members) under ``root``."""
    spec = dict(spec)
    if (spec.get("backend") == "hf" or spec.get("kind", spec.get("name")) == "learned") and "path" in spec:
        spec["path"] = str(root / spec["path"])
    if spec.get("kind", spec.get("name")) == "any" and isinstance(spec.get("of"), (list, tuple)):
        spec["of"] = [_resolved(m, root) if isinstance(m, Mapping) else m for m in spec["of"]]
    return spec


def _unrooted(value, root: Path):
    """``value`` (settings: dicts, lists, strings) with every path under ``root`` written relative to it."""
    if isinstance(value, Mapping):
        return {k: _unrooted(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_unrooted(v, root) for v in value]
    if isinstance(value, str) and value.startswith(f"{root}/"):
        return value[len(str(root)) + 1:]
    return value


def _stage_judge(spec: Mapping, root: Path):
    """A judge from a params spec (checked by the schema at the door), with its model paths under ``root``."""
    from .judge import build_judge

    return build_judge(_resolved(spec, root))


def judge_generations(params: Mapping, root: str | os.PathLike = ".", gold: Mapping | None = None) -> dict:
    """Every judge labels every cached generation; returns counts per judge. Nothing is generated here (a
    ``learned`` judge is trained first if its model file is missing or stale: :func:`prepare_learned`)."""
    from .judge import _label_checked

    g, j = params["generate"], params["judge"]
    generations = Path(root) / g["out"]
    prepare_learned(params, root, gold)
    judges = [_stage_judge(spec, Path(root)) for spec in j["judges"]]
    counts = {}
    for judge in judges:
        out = Path(root) / j["labels_dir"] / judge.name
        with atomic_dir(out) as tmp:
            n = 0
            for cache in sorted(generations.glob("*/*/cache*.jsonl")):
                model, bench = cache.parent.parent.name, cache.parent.name
                prompts = {r["id"]: r for r in read_jsonl(cache.parent / "prompts.jsonl")}
                cached = read_jsonl(cache)
                rows = [{"id": c["id"], "prompt": prompts[c["id"]]["prompt"], "category": prompts[c["id"]]["category"],
                         "should_refuse": prompts[c["id"]]["should_refuse"],
                         "first_token": None if c["first_token"] == "free" else c["first_token"], "text": c["text"]}
                        for c in cached]
                labels = _label_checked(judge, rows) if rows else []
                write_jsonl(tmp / model / bench / cache.name,
                            [{"id": c["id"], "first_token": c["first_token"], "refusal": lab["refusal"], "raw": lab["raw"]}
                             for c, lab in zip(cached, labels)])
                n += len(rows)
        counts[judge.name] = n
    return counts


def write_judge_card(params: Mapping, root: str | os.PathLike = ".", records=None, gold: Mapping | None = None) -> dict:
    """Agreement of each card judge with both gold sets (XSTest's human labels; the audited noncompliance set), on
    full texts and 16-token openings, tuning vs held-out part → ``reports/judge_card.md`` + metrics JSON, both
    written whole or not at all. ``records`` (toy XSTest records, the smoke run) replace the mirror's XSTest and
    leave out the noncompliance set.

    A judge spec may carry ``rows: n``: that judge labels a subset of n held-out items per gold set, stratified over
    (completing model or source, gold label), for judges too slow for all of them (a local LLM on CPU)."""
    from .judge import XSTEST_TUNE_MODELS, judge_card, judge_card_markdown, xstest_gold

    j, root = params["judge"], Path(root)
    gold = gold or judge_gold(params, root, records)
    records, noncompliance = gold["records"], gold["noncompliance"]
    prepare_learned(params, root, gold)
    labels = xstest_gold(records)
    card, notes = None, []
    for spec in j["card_judges"]:
        spec = dict(spec)
        limit = int(spec.pop("rows", 0) or 0)
        subset, nc_subset = records, noncompliance
        if limit:  # drawn from the held-out parts, which the card reports (all records if none is held out)
            pool = [(r, g) for r, g in zip(records, labels) if r.category not in XSTEST_TUNE_MODELS]
            keyed = [{"id": r.id, "category": r.category, "should_refuse": g, "record": r}
                     for r, g in pool or zip(records, labels)]
            subset = [k["record"] for k in stratified(keyed, limit, 0)]
            if noncompliance:
                keyed = [{"id": i["id"], "category": i["groups"]["source"], "should_refuse": i["gold"], "item": i}
                         for i in noncompliance if i["part"] == "heldout"]
                nc_subset = [k["item"] for k in stratified(keyed, limit, 0)]
            notes.append(f"- **{spec['name']}** labelled a subset of {len(subset)} held-out XSTest completions"
                         + (f" and {len(nc_subset)} held-out noncompliance items" if noncompliance else "")
                         + ", stratified over (completing model or source, gold label): its numbers are noisier than "
                         "the others'.")
        part = judge_card([_stage_judge(spec, root)], subset, nc_subset, gold["truncate"], gold["description"])
        # paths as configured (relative to the project), not this machine's, also inside an 'any' judge's members
        part["judges"][spec["name"]]["settings"] = _unrooted(part["judges"][spec["name"]]["settings"], root)
        if card is None or (not limit and card.get("_subset")):
            card = {**part, "judges": {**(card or {}).get("judges", {}), **part["judges"]}, "_subset": bool(limit)}
        else:
            card["judges"].update(part["judges"])
        card["judges"][spec["name"]]["rows"] = len(subset)
    card.pop("_subset", None)
    markdown = judge_card_markdown(card) + ("\n## Subsets\n\n" + "\n".join(notes) + "\n" if notes else "")
    outputs = ((root / j.get("card", "reports/judge_card.md"), markdown),
               (root / j.get("card_metrics", "reports/metrics/judge_card.json"),
                json.dumps(card, indent=2, sort_keys=True) + "\n"))
    write_texts(outputs)  # both temporary files first, then both renames: no half-written card
    return {name: {**{k: v["overall"][k] for k in ("n", "accuracy", "cohen_kappa")},
                   "heldout_kappa": {s: {length: sc["heldout"]["cohen_kappa"] for length, sc in lengths.items()}
                                     for s, lengths in v["gold_sets"].items()}}
            for name, v in card["judges"].items()}


def load_run(generations: str | os.PathLike, labels: str | os.PathLike, model: str, benchmark: str,
             judges: Sequence[str], variant: str = "") -> dict:
    """One (model, benchmark) as dicts: prompts, scores by id, cache by (id, token), labels[judge] by (id, token)."""
    folder = Path(generations) / model / benchmark
    out = {"prompts": read_jsonl(folder / "prompts.jsonl"), "scores": {}, "cache": {}, "labels": {}}
    if (folder / f"scores{variant}.jsonl").is_file():
        out["scores"] = {r["id"]: r for r in read_jsonl(folder / f"scores{variant}.jsonl")}
    if (folder / f"cache{variant}.jsonl").is_file():
        out["cache"] = {(r["id"], r["first_token"]): r["text"] for r in read_jsonl(folder / f"cache{variant}.jsonl")}
        for judge in judges:
            path = Path(labels) / judge / model / benchmark / f"cache{variant}.jsonl"
            out["labels"][judge] = {(r["id"], r["first_token"]): r["refusal"] for r in read_jsonl(path)}
    return out


# ------------------------------------------------------------------------------------------------ statistics

def wilson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval (statsmodels ``proportion_confint``) for k successes in n trials (n = 0 → (0, 1))."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return 0.0, 1.0
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return max(0.0, float(lo)), min(1.0, float(hi))


def rate(labels: Sequence[bool | None]) -> dict:
    """Refusal rate with its Wilson interval over the labelled items (None = the judge could not tell)."""
    known = [bool(x) for x in labels if x is not None]
    k, n = sum(known), len(known)
    lo, hi = wilson(k, n)
    return {"refusals": k, "n": n, "unlabelled": len(labels) - n, "rate": k / n if n else None, "ci_low": lo,
            "ci_high": hi}


def f1_score(pred: Sequence[bool], gold: Sequence[bool]) -> float:
    """F1 with refusal as the positive class (scikit-learn); 0 when nothing is both predicted and true."""
    from sklearn.metrics import f1_score as sk_f1

    return float(sk_f1([bool(g) for g in gold], [bool(p) for p in pred], zero_division=0.0))


# ------------------------------------------------------------------------------------------------------ CLI

def main(argv: list[str] | None = None) -> int:
    from .config import load
    from .judge import JudgeError

    parser = argparse.ArgumentParser(description="Benchmark generation and judging stages.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="score + generate every benchmark for one model")
    gen.add_argument("--model", required=True, help="a key of params.yaml generate.models")
    sub.add_parser("judge", help="label every cached generation with every judge; write the judge card")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        need = ("generate",) if args.command == "generate" else ("generate", "judge")
        params = load(args.params, require=need).values()  # checked before anything is written
        if args.command == "generate":
            result = generate_model(args.model, params, mirror=os.environ.get("REFUSAL_TOKENS_MIRROR"))
            result = {k: result[k] for k in ("model", "status", "counts", "seconds", "generated_tokens")}
        else:
            result = {"labels": judge_generations(params), "card": write_judge_card(params)}
    except (DataError, SourceUnavailable, JudgeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
