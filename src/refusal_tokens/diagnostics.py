"""Diagnostics: *why* a refusal token does or does not separate what to refuse from what to answer.

Three measurements, each a baseline the trained token's AUROC is read against (notebook 03, section 0):

- **within-subcategory AUROC** (:func:`within_group_auroc`): refusals vs answers *of the same subcategory* on the
  validation split. A model that separates the mix only by source style (refusals from one dataset, answers from
  another) scores high overall and near 0.5 here.
- **shortcut baseline** (:func:`shortcut_baseline`): a bag-of-words classifier (TF-IDF + logistic regression)
  trained on the training mix's prompts. If words alone match the token on validation but not on CoCoNot, the mix
  teaches surface style.
- **frozen-feature ceiling** (:func:`frozen_ceiling`): logistic regression on the *base* model's hidden state at
  the first response position (the position whose logits the token is read from), per layer. Cross-validated within
  CoCoNot (held-out original vs contrast) it says how much this model's representation can separate at all;
  trained on the mix and tested on CoCoNot / XSTest it says how far the *data* carries.

    python -m refusal_tokens.diagnostics            # the `diagnostics` DVC stage (params: diagnostics)

Writes ``reports/metrics/diagnostics.json`` (headline numbers) and ``reports/diagnostics/*.json`` (details).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .config import load
from .errors import DataError, SourceUnavailable
from .files import read_jsonl, write_texts


def auroc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """sklearn's ROC AUC (:func:`refusal_tokens.train.auroc`, labels first); None when one class is absent."""
    from .train import auroc as train_auroc

    return train_auroc(scores, labels)


def within_group_auroc(rows: Sequence[Mapping], score_key: str = "p_refusal", group_key: str = "subcategory",
                       min_per_side: int = 2) -> dict:
    """AUROC of ``score_key`` for refusals vs answers *within* each ``group_key`` value that has at least
    ``min_per_side`` rows on both sides, and their row-weighted mean. Groups with one side only are listed.

    >>> rows = [{"subcategory": "a", "should_refuse": y, "p_refusal": p} for y, p in
    ...         [(True, .9), (True, .8), (False, .1), (False, .2)]]
    >>> within_group_auroc(rows)["mean"]
    1.0
    """
    groups: dict[str, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(str(row.get(group_key) or ""), []).append(row)
    per_group, one_sided, weights = {}, [], {}
    for name, members in sorted(groups.items()):
        pos = sum(bool(r["should_refuse"]) for r in members)
        neg = len(members) - pos
        if pos >= min_per_side and neg >= min_per_side:
            per_group[name] = {"auroc": auroc([r["should_refuse"] for r in members], [r[score_key] for r in members]),
                               "refusals": pos, "answers": neg}
            weights[name] = len(members)
        else:
            one_sided.append(name)
    mean = (sum(per_group[g]["auroc"] * w for g, w in weights.items()) / sum(weights.values())) if weights else None
    return {"mean": mean, "groups": per_group, "one_sided": one_sided}


def shortcut_baseline(train: Sequence[Mapping], tests: Mapping[str, Sequence[Mapping]], seed: int = 0) -> dict:
    """TF-IDF (word 1–2-grams) + logistic regression on ``train``'s prompts → AUROC on each test set.

    Rows are ``{"prompt": str, "should_refuse": bool}``. A surface-word classifier is the cheapest model of
    "what the mix teaches"; its AUROC on a test set is the bar a trained token should clear.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    labels = [bool(r["should_refuse"]) for r in train]
    if len(set(labels)) < 2:
        raise DataError("shortcut baseline: the training rows need both refusals and answers")
    clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                        LogisticRegression(C=1.0, max_iter=2000, random_state=seed))
    clf.fit([r["prompt"] for r in train], labels)
    out = {}
    for name, rows in tests.items():
        scores = clf.predict_proba([r["prompt"] for r in rows])[:, 1] if rows else []
        out[name] = auroc([r["should_refuse"] for r in rows], scores)
    return out


def _probe(seed: int, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=seed))


def probe_transfer(train_x: np.ndarray, train_y: Sequence[bool], test_x: np.ndarray, test_y: Sequence[bool],
                   c: float = 0.05, seed: int = 0) -> float | None:
    """Logistic regression (standardised features, L2 strength 1/C) trained on one set, AUROC on another."""
    if len(set(map(bool, train_y))) < 2:
        raise DataError("probe: the training rows need both classes")
    model = _probe(seed, c).fit(train_x, list(map(bool, train_y)))
    return auroc(test_y, model.predict_proba(test_x)[:, 1])


def probe_cv(x: np.ndarray, y: Sequence[bool], folds: int = 5, c: float = 0.05, seed: int = 0) -> float | None:
    """Stratified ``folds``-fold cross-validated AUROC (out-of-fold scores pooled) of the same probe."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.array(list(map(bool, y)))
    if len(set(y.tolist())) < 2:
        return None
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(_probe(seed, c), x, y, cv=cv, method="predict_proba")[:, 1]
    return auroc(y.tolist(), scores.tolist())


def hidden_states(model, tokenizer, conversations: Sequence[Sequence[Mapping[str, str]]], layers: Sequence[int],
                  batch_size: int = 32, max_tokens: int = 1024) -> dict[int, np.ndarray]:
    """``layer → [n, hidden]`` float32 hidden states at the first response position (the last prompt token after
    the chat template's generation prompt), batched like :func:`refusal_tokens.control.score`."""
    import torch

    from .control import length_batches
    from .scoring import chat_prompts, left_pad

    n_layers = model.config.num_hidden_layers
    bad = [layer for layer in layers if not 0 <= layer <= n_layers]
    if bad:
        raise DataError(f"layers {bad} outside 0..{n_layers} (0 = embeddings, {n_layers} = last block)")
    if not conversations:
        raise DataError("no prompts to embed")
    encoded = chat_prompts(tokenizer, conversations)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = {layer: np.zeros((len(encoded), model.config.hidden_size), dtype=np.float32) for layer in layers}
    model.eval()
    with torch.no_grad():
        for batch in length_batches([len(e) for e in encoded], batch_size, max_tokens):
            input_ids, mask = left_pad([encoded[i] for i in batch], pad)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            states = model.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                 output_hidden_states=True).hidden_states
            for layer in layers:
                out[layer][batch] = states[layer][:, -1, :].float().numpy()
    return out


def frozen_ceiling(features: Mapping[str, Mapping[int, np.ndarray]], labels: Mapping[str, Sequence[bool]],
                   c: float = 0.05, folds: int = 5, seed: int = 0) -> dict:
    """Per layer: the probe trained on ``mix_train`` → AUROC on ``validation``, ``coconot`` and ``xstest``; and
    ``folds``-fold CV within ``coconot`` and within ``xstest`` (the ceilings). ``features[set][layer]``."""
    layers = sorted(features["mix_train"])
    out = {}
    for layer in layers:
        row = {}
        for test in ("validation", "coconot", "xstest"):
            if test in features:
                row[f"mix_to_{test}"] = probe_transfer(features["mix_train"][layer], labels["mix_train"],
                                                       features[test][layer], labels[test], c, seed)
        for test in ("coconot", "xstest"):
            if test in features:
                row[f"cv_{test}"] = probe_cv(features[test][layer], labels[test], folds, c, seed)
        out[str(layer)] = row
    return out


# ------------------------------------------------------------------------------------------------- the stage

def _rows_for(params: Mapping, mirror=None) -> dict[str, list[dict]]:
    from .benchmarks import benchmark_rows, validation_rows
    d = params["diagnostics"]
    mix = Path(d["mixes_dir"]) / d["mix"] / "none"
    train = [{"id": r["id"], "prompt": r["prompt"][-1]["content"], "conversation": list(r["prompt"]),
              "category": r["category"], "subcategory": r.get("subcategory", ""),
              "should_refuse": bool(r["should_refuse"])} for r in read_jsonl(mix / "train.jsonl")]
    return {"mix_train": train, "validation": validation_rows(mix / "validation.jsonl"),
            "coconot": benchmark_rows("coconot_original", mirror) + benchmark_rows("coconot_contrast", mirror),
            "xstest": benchmark_rows("xstest", mirror)}


def run(params: Mapping, root: str | os.PathLike = ".", mirror=None) -> dict:
    """The stage: shortcut baseline + frozen-feature ceiling; writes the metrics and details files."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = params["diagnostics"]
    root = Path(root)
    if d.get("torch_threads"):
        torch.set_num_threads(int(d["torch_threads"]))
    rows = _rows_for(params, mirror)
    start = time.perf_counter()
    shortcut = shortcut_baseline(rows["mix_train"], {k: v for k, v in rows.items() if k != "mix_train"}, d["seed"])
    model_dir = root / d["model"]
    if not (model_dir / "config.json").is_file():
        raise DataError(f"{model_dir} holds no model: run `dvc repro prepare_model` first")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    layers = [int(x) for x in d["layers"]]
    features = {name: hidden_states(model, tokenizer, [r["conversation"] for r in rs], layers,
                                    d["batch_size"], d["max_tokens"]) for name, rs in rows.items()}
    labels = {name: [r["should_refuse"] for r in rs] for name, rs in rows.items()}
    ceiling = frozen_ceiling(features, labels, d["probe_c"], d["folds"], d["seed"])
    details = {"mix": d["mix"], "model": d["model"], "layers": layers, "probe_c": d["probe_c"], "folds": d["folds"],
               "rows": {k: len(v) for k, v in rows.items()}, "seconds": time.perf_counter() - start}
    return write(root, shortcut, ceiling, details)


def write(root: str | os.PathLike, shortcut: Mapping, ceiling: Mapping, details: Mapping) -> dict:
    """Write ``reports/metrics/diagnostics.json`` (headline: the layer whose within-CoCoNot CV is best) and
    ``reports/diagnostics/diagnostics.json`` (everything), each atomically; returns both."""
    best = max(ceiling, key=lambda k: ceiling[k]["cv_coconot"] or 0)
    headline = {
        "shortcut_auroc_validation": shortcut["validation"], "shortcut_auroc_coconot": shortcut["coconot"],
        "shortcut_auroc_xstest": shortcut["xstest"],
        "frozen_cv_auroc_coconot_best": ceiling[best]["cv_coconot"], "frozen_best_layer": int(best),
        "frozen_mix_to_coconot_auroc": ceiling[best]["mix_to_coconot"],
        "frozen_mix_to_xstest_auroc": ceiling[best]["mix_to_xstest"],
        "frozen_cv_auroc_xstest": ceiling[best]["cv_xstest"],
    }
    details = {**details, "shortcut_auroc": shortcut, "frozen_probe_auroc": ceiling}
    root = Path(root)
    write_texts([(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
                 for path, payload in ((root / "reports" / "metrics" / "diagnostics.json", headline),
                                       (root / "reports" / "diagnostics" / "diagnostics.json", details))])
    return {"headline": headline, "details": details}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Shortcut baseline and frozen-feature ceiling (diagnostics).")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        result = run(load(args.params, require=("diagnostics",)).values())  # checked before anything is written
    except (DataError, SourceUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result["headline"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
