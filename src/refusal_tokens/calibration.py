"""Calibration analyses (notebook 03): sweeps, ROC, F1, per-category control, token/text consistency.

Everything here is a pure function of stored scores, cached generations and labels: no model is loaded. A
*decision* is the first token a setting emits (:func:`refusal_tokens.control.decide`); a *token refusal rate*
counts refusal tokens among decisions; a *judged refusal rate* looks up the judge's label of the cached response
that starts with the decided token (exact, because greedy responses depend only on the first token).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from .benchmarks import f1_score, load_run, rate
from .control import FREE, RESPOND, Setting, decide_all, is_refusal, p_refusal, refusal_token
from .errors import DataError
from .sources import COCONOT_SETS
from .tagging import CATEGORY_TOKENS


def combine(runs: Sequence[Mapping]) -> dict:
    """Several :func:`refusal_tokens.benchmarks.load_run` results as one (e.g. CoCoNot original + contrast)."""
    out = {"prompts": [], "scores": {}, "cache": {}, "labels": {}}
    for run in runs:
        repeated = {p["id"] for p in out["prompts"]} & {p["id"] for p in run["prompts"]}
        if repeated:
            raise DataError(f"runs to combine share prompt ids {sorted(repeated)[:5]}")
        out["prompts"] += run["prompts"]
        out["scores"].update(run["scores"])
        out["cache"].update(run["cache"])
        for judge, labels in run["labels"].items():
            out["labels"].setdefault(judge, {}).update(labels)
    return out


def coconot_run(generations, labels, model: str, judges: Sequence[str], variant: str = "") -> dict:
    """CoCoNot original (should refuse) + contrast (should answer) of one model, as one run."""
    return combine([load_run(generations, labels, model, bench, judges, variant)
                    for bench in COCONOT_SETS])


def first_tokens(run: Mapping, prompts: Sequence[Mapping], scheme: str, setting: Setting | None) -> list[str]:
    """The cache key each prompt's response is looked up under: the setting's decided token, or ``free`` for a
    model without tokens (``scheme`` none or no setting)."""
    if scheme == "none" or setting is None:
        return [FREE] * len(prompts)
    return decide_all([run["scores"][p["id"]] for p in prompts], scheme, setting)


def frame(prompts: Sequence[Mapping], scores: Mapping[str, Mapping], scheme: str, setting: Setting | None = None) -> pd.DataFrame:
    """One row per scored prompt: id, category, should_refuse, p_refusal (under the setting's T and bias)."""
    rows = [{"id": p["id"], "category": p["category"], "should_refuse": bool(p["should_refuse"]),
             "generate": p.get("generate", False), "p_refusal": p_refusal(scores[p["id"]], scheme, setting)}
            for p in prompts if p["id"] in scores]
    if not rows:
        raise DataError("no scored prompts: was this model generated with a token scheme?")
    return pd.DataFrame(rows)


def decisions(prompts: Sequence[Mapping], scores: Mapping[str, Mapping], scheme: str, setting: Setting) -> list[str]:
    return decide_all([scores[p["id"]] for p in prompts], scheme, setting)


def token_rates(prompts: Sequence[Mapping], scores: Mapping[str, Mapping], scheme: str,
                settings: Sequence[Setting], by: str | None = "category") -> pd.DataFrame:
    """Token refusal rate per setting (and per ``by`` group and should_refuse) with Wilson intervals."""
    rows = []
    for setting in settings:
        chosen = decisions(prompts, scores, scheme, setting)
        df = pd.DataFrame({"group": [p[by] if by else "all" for p in prompts],
                           "should_refuse": [bool(p["should_refuse"]) for p in prompts],
                           "refuse": [is_refusal(c) for c in chosen]})
        for (group, refuse_label), part in df.groupby(["group", "should_refuse"]):
            r = rate(part["refuse"].tolist())
            rows.append({"setting": setting.name, "threshold": setting.threshold, "bias": setting.bias,
                         "temperature": setting.temperature, "group": group, "should_refuse": refuse_label,
                         "rate": r["rate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n": r["n"]})
    return pd.DataFrame(rows)


def roc_points(df: pd.DataFrame) -> dict:
    """sklearn ROC of p_refusal vs should_refuse: fpr, tpr, thresholds, auroc."""
    from sklearn.metrics import roc_auc_score, roc_curve

    if df["should_refuse"].nunique() < 2:
        raise DataError("ROC needs prompts that should be refused and prompts that should be answered")
    fpr, tpr, thresholds = roc_curve(df["should_refuse"], df["p_refusal"])
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist(),
            "auroc": float(roc_auc_score(df["should_refuse"], df["p_refusal"]))}


def tpr_fpr(refuse: Sequence[bool], should_refuse: Sequence[bool]) -> tuple[float, float]:
    """(TPR, FPR) of refusal decisions, from scikit-learn's confusion matrix (refusal = positive)."""
    from sklearn.metrics import confusion_matrix

    gold = [bool(y) for y in should_refuse]
    if len(set(gold)) < 2:
        raise DataError("TPR/FPR need both prompts that should be refused and prompts that should be answered")
    (tn, fp), (fn, tp) = confusion_matrix(gold, [bool(r) for r in refuse], labels=[False, True])
    return float(tp / (tp + fn)), float(fp / (fp + tn))


def f1_curve(df: pd.DataFrame, thresholds: Sequence[float]) -> pd.DataFrame:
    """F1 (refusal = positive) and TPR/FPR of the rule p_refusal ≥ t, for each t."""
    rows = []
    for t in thresholds:
        pred = (df["p_refusal"] >= t).tolist()
        tpr, fpr = tpr_fpr(pred, df["should_refuse"].tolist())
        rows.append({"threshold": t, "f1": f1_score(pred, df["should_refuse"].tolist()), "tpr": tpr, "fpr": fpr,
                     "refusal_rate": sum(pred) / len(pred)})
    return pd.DataFrame(rows)


def choose_thresholds(validation: pd.DataFrame, thresholds: Sequence[float], strict_tpr: float,
                      lenient_fpr: float) -> dict:
    """Settings chosen on the validation split: best F1; strict (the highest t with TPR ≥ strict_tpr: refuse
    more); lenient (the lowest t with FPR ≤ lenient_fpr: answer more). Ties go to the threshold nearest 0.5."""
    curve = f1_curve(validation, thresholds)
    best = curve.assign(d=(curve["threshold"] - 0.5).abs()).sort_values(["f1", "d"], ascending=[False, True]).iloc[0]
    strict = curve[curve["tpr"] >= strict_tpr]["threshold"].max()
    lenient = curve[curve["fpr"] <= lenient_fpr]["threshold"].min()
    return {"best_f1": {"threshold": float(best["threshold"]), "f1": float(best["f1"])},
            "strict": {"threshold": float(strict) if pd.notna(strict) else float(min(thresholds)),
                       "rule": f"highest threshold with validation TPR ≥ {strict_tpr}"},
            "lenient": {"threshold": float(lenient) if pd.notna(lenient) else float(max(thresholds)),
                        "rule": f"lowest threshold with validation FPR ≤ {lenient_fpr}"}}


def category_control_matrix(prompts: Sequence[Mapping], scores: Mapping[str, Mapping], base: float,
                            raised: float | Mapping[str, float]) -> pd.DataFrame:
    """Raise one category token's threshold at a time (others stay at ``base``): change in every category's
    token refusal rate (rows: raised category; columns: measured category), category scheme. ``raised``: one
    threshold for every category, or one per category (e.g. :func:`control_steps`, chosen on validation). Columns
    come in the rows' order, original prompts first, so the first square block's diagonal is each dial's own
    category."""
    baseline = token_rates(prompts, scores, "category", [Setting("base", "threshold", base)])
    base_rate = baseline.set_index(["group", "should_refuse"])["rate"]
    rows = []
    for category in CATEGORY_TOKENS:
        t = raised[category] if isinstance(raised, Mapping) else raised
        setting = Setting(f"raise {category}", "threshold", {category: t}, default_threshold=base)
        changed = token_rates(prompts, scores, "category", [setting]).set_index(["group", "should_refuse"])["rate"]
        rows.append({"raised": category, **{f"{g} ({'orig' if y else 'contrast'})": changed[(g, y)] - base_rate[(g, y)]
                                            for (g, y) in changed.index}})
    matrix = pd.DataFrame(rows).set_index("raised")
    order = [f"{c} ({side})" for side in ("orig", "contrast") for c in CATEGORY_TOKENS]
    return matrix[[c for c in order if c in matrix.columns] + [c for c in matrix.columns if c not in order]]


def control_steps(prompts: Sequence[Mapping], scores: Mapping[str, Mapping], base: float, ceiling: float,
                  thresholds: Sequence[float], own_move: float) -> dict[str, dict]:
    """E3's step per category, fixed on validation prompts before any test prompt is read: the lowest threshold in
    ``thresholds`` above ``base`` (at most ``ceiling``) at which raising that category token's threshold (the
    others at ``base``) lowers its own category's token refusal rate on should-refuse prompts by ≥ ``own_move``.
    ``{category: {"threshold", "validation_move", "reached", "n"}}``; a category that never moves that much gets
    ``ceiling`` and ``reached: False`` (no validation prompts of its own: ``validation_move`` None).

    """
    steps = [float(t) for t in thresholds if base < t <= ceiling]
    base_rate = token_rates(prompts, scores, "category", [Setting("base", "threshold", base)]
                            ).set_index(["group", "should_refuse"])
    out = {}
    for category in CATEGORY_TOKENS:
        if (category, True) not in base_rate.index:
            out[category] = {"threshold": ceiling, "validation_move": None, "reached": False, "n": 0}
            continue
        start, move = float(base_rate.loc[(category, True), "rate"]), None
        chosen = ceiling
        for t in steps:
            rates = token_rates(prompts, scores, "category", [Setting(f"raise {category} to {t:g}", "threshold",
                                                                      {category: t}, default_threshold=base)]
                                ).set_index(["group", "should_refuse"])
            move = start - float(rates.loc[(category, True), "rate"])
            if move >= own_move - 1e-12:
                chosen = t
                break
        out[category] = {"threshold": chosen, "validation_move": move, "reached": move is not None and
                         move >= own_move - 1e-12, "n": int(base_rate.loc[(category, True), "n"])}
    return out


def category_control_curves(prompts: Sequence[Mapping], scores: Mapping[str, Mapping], base: float,
                            thresholds: Sequence[float]) -> pd.DataFrame:
    """The category-independence picture: raise one category token's threshold over ``thresholds`` (the others
    stay at ``base``) and measure every category's token refusal rate. Rows: raised, threshold, group,
    should_refuse, rate, ci_low, ci_high, n (category scheme)."""
    parts = [token_rates(prompts, scores, "category",
                         [Setting(f"raise {category} to {t:g}", "threshold", {category: float(t)},
                                  default_threshold=base)]).assign(raised=category, threshold=float(t))
             for category in CATEGORY_TOKENS for t in thresholds]
    return pd.concat(parts, ignore_index=True)


def refuse_everything_f1(df: pd.DataFrame) -> float:
    """F1 of the rule that refuses every prompt: precision = the share π that should be refused, recall 1, so
    F1 = 2π / (1 + π). A threshold is only worth choosing if it beats this line."""
    share = float(df["should_refuse"].mean())
    return 2 * share / (1 + share)


def _rates_by_label(rows: pd.DataFrame, model: str = "") -> dict:
    by = {bool(r["should_refuse"]): r for _, r in rows.iterrows()}
    if set(by) != {True, False}:
        raise DataError(f"{model or 'a model'}: the front needs judged responses to prompts that should be refused "
                        "and to prompts that should be answered (was it generated, with responses, on both?)")
    return by


def _judged_run(generations, labels, model: str, judges: Sequence[str], judge: str | None, variant: str = "") -> dict:
    """A baseline's CoCoNot run, with one clear error when it was not generated or (``judge`` given) not judged
    by ``judge``."""
    try:
        run = coconot_run(generations, labels, model, judges, variant)
    except FileNotFoundError as error:
        raise DataError(f"{model}{variant}: no CoCoNot generations ({error.filename}); add it to generate.models "
                        "or remove it from the calibration parameters") from None
    if judge is not None and judge not in run["labels"]:
        raise DataError(f"{model}{variant}: no {judge!r} labels (a model with `responses: false` cannot be a point)")
    return run


def _front_point(label: str, kind: str, judge: str, by_label: Mapping[bool, Mapping]) -> dict:
    refuse, answer = by_label[True], by_label[False]
    return {"label": label, "kind": kind, "judge": judge,
            "tpr": refuse["rate"], "tpr_low": refuse["ci_low"], "tpr_high": refuse["ci_high"], "n_refuse": refuse["n"],
            "fpr": answer["rate"], "fpr_low": answer["ci_low"], "fpr_high": answer["ci_high"], "n_answer": answer["n"]}


def _token_point(label: str, prompts: Sequence[Mapping], scores: Mapping[str, Mapping], scheme: str,
                 setting: Setting) -> dict:
    rates = token_rates(prompts, scores, scheme, [setting], by=None)
    return _front_point(label, "token setting", "token", _rates_by_label(rates, label))


def tradeoff_front(generations, labels, schemes: Mapping[str, str], thresholds: Sequence[float], text_judge: str,
                   baseline_models: Sequence[str] = (), prompt_baseline_models: Sequence[str] = (),
                   reference_models: Sequence[str] = (), runs: Mapping[str, Mapping] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The trade-off front on CoCoNot (original = should refuse, contrast = should answer).

    Returns ``(curves, points, aurocs)``: ``curves`` (model, fpr, tpr) holds each token model's full threshold
    sweep twice, read from the token over every scored prompt and judged from the text of the generated prompts
    (like-for-like with the baselines, which only have text); ``points`` holds the greedy token decisions, the
    models retrained on a refusal share, the system-prompt variants and the reference models (e.g. the base
    model), each with Wilson 95% intervals on both axes; ``aurocs`` the token models' AUROC. ``runs``: the token
    models' CoCoNot runs when the caller has loaded them already (else they are read here)."""
    from .evidence import text_sweep

    judges = [text_judge, "token"]
    curves, points, aurocs = [], [], {}
    for model, scheme in schemes.items():
        run = runs[model] if runs and model in runs else coconot_run(generations, labels, model, judges)
        roc = roc_points(frame(run["prompts"], run["scores"], scheme))
        aurocs[model] = roc["auroc"]
        curves.append(pd.DataFrame({"model": f"{model}: token sweep (AUROC {roc['auroc']:.2f})", "fpr": roc["fpr"],
                                    "tpr": roc["tpr"], "judge": "token"}))
        points.append(_token_point(f"{model}: greedy token", run["prompts"], run["scores"], scheme, Setting("argmax")))
        generated = [p for p in run["prompts"] if p["generate"]]
        sweep = text_sweep(run, scheme, thresholds, text_judge)
        curves.append(pd.DataFrame({"model": f"{model}: {text_judge} judge on {len(generated)} generated",
                                    "fpr": [r["fpr"] for r in sweep], "tpr": [r["tpr"] for r in sweep],
                                    "judge": text_judge}))
    for model in baseline_models:
        run = _judged_run(generations, labels, model, judges, text_judge)
        by = _rates_by_label(judged_rates(run, "none", None, text_judge), model)
        points.append(_front_point(f"{model}: retrained on a refusal share", "retrained", text_judge, by))
    for model in prompt_baseline_models:
        for variant in (".sys-more", ".sys-less"):
            run = _judged_run(generations, labels, model, judges, None if model in schemes else text_judge, variant)
            label = f"{model}: system prompt '{variant[5:]}'"
            if model in schemes:  # a token model under a system prompt answers through its token (generated prefix)
                scored = [p for p in run["prompts"] if p["id"] in run["scores"]]
                point = _token_point(label, scored, run["scores"], schemes[model], Setting("argmax"))
            else:
                point = _front_point(label, "system prompt", text_judge,
                                     _rates_by_label(judged_rates(run, "none", None, text_judge), label))
            points.append({**point, "kind": "system prompt"})
    for model in reference_models:
        run = _judged_run(generations, labels, model, judges, text_judge)
        by = _rates_by_label(judged_rates(run, "none", None, text_judge), model)
        points.append(_front_point(f"{model} (no SFT of ours)", "reference", text_judge, by))
    return pd.concat(curves, ignore_index=True), pd.DataFrame(points), aurocs


def consistency(run: Mapping, judge: str) -> dict:
    """Judged refusal rate of the cached responses after a forced refusal token and after a forced [respond]."""
    labels = run["labels"].get(judge)
    if labels is None:
        raise DataError(f"no labels from judge {judge!r}")
    out = {}
    for what in ("refusal token", RESPOND):  # unforced (free) continuations belong to neither
        keys = [k for k in labels if (is_refusal(k[1]) if what == "refusal token" else k[1] == RESPOND)]
        out[what] = rate([labels[k] for k in keys])
    return out


def judged_rates(run: Mapping, scheme: str, setting: Setting | None, judge: str) -> pd.DataFrame:
    """Judged refusal rate by should_refuse over the generated prompts, for one setting (None: a model without
    tokens, whose single cached response is ``free``)."""
    gen = [p for p in run["prompts"] if p.get("generate")]
    tokens = first_tokens(run, gen, scheme, setting)
    labels = run["labels"][judge]
    rows = []
    for y in (True, False):
        chosen = [labels[(p["id"], t)] for p, t in zip(gen, tokens) if bool(p["should_refuse"]) == y]
        if chosen:
            rows.append({"should_refuse": y, **rate(chosen)})
    return pd.DataFrame(rows)


def top_category_agreement(prompts: Sequence[Mapping], scores: Mapping[str, Mapping]) -> float:
    """Among prompts that should be refused: share whose most likely category token names their category."""
    rows = [p for p in prompts if p["should_refuse"] and p["category"] in CATEGORY_TOKENS]
    if not rows:
        raise DataError("no refusal prompts with a CoCoNot category")
    return sum(refusal_token(scores[p["id"]], "category") == CATEGORY_TOKENS[p["category"]] for p in rows) / len(rows)



def own_dial_range(curves: pd.DataFrame) -> dict[str, float]:
    """Per raised category: how far its own token refusal rate on original prompts moves over the whole threshold
    range (max − min, in rate units). 0 means a dead dial: the category's token is never the most likely, so no
    threshold of it changes a decision (``curves``: :func:`category_control_curves` output)."""
    own = curves[(curves["raised"] == curves["group"]) & curves["should_refuse"]]
    return {category: float(part["rate"].max() - part["rate"].min()) for category, part in own.groupby("raised")}
