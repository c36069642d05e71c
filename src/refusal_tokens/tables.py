"""The benchmark table (notebook 04): every (benchmark, split) × (model, control setting) cell, per judge.

A cell holds, per judge, the refusal rate with its Wilson 95% interval and n; for models with tokens also the
token/judge agreement (share of generated prompts on which the first token and the text judge agree). Token rates
use every *scored* prompt (a decision needs no generation); text-judge rates use the *generated* prompts, whose
responses are looked up in the cache for the decided first token — nothing is regenerated to build a setting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from .benchmarks import REFERENCE, load_run, rate, split_name
from .files import write_jsonl, write_texts
from .calibration import first_tokens
from .control import FREE, Setting, is_refusal
from .errors import DataError

DEFAULT = "default"  # no intervention: the greedy first token


def model_settings(scheme: str, thresholds: Mapping | None) -> list[Setting]:
    """No intervention for every model; + best-F1, strict and lenient thresholds for models with tokens."""
    if scheme == "none":
        return [Setting(DEFAULT)]
    if not thresholds:
        raise DataError("a model with tokens needs its calibrated thresholds (reports/metrics/calibration.json)")
    return [Setting(DEFAULT)] + [Setting(name, "threshold", float(thresholds[name]["threshold"]))
                                 for name in ("best_f1", "strict", "lenient")]


def column(model: str, setting: Setting) -> str:
    return model if setting.name == DEFAULT else f"{model} · {setting.name} (t={setting.threshold:g})"


def completions(run: Mapping, scheme: str, setting: Setting, judges: Sequence[str]) -> list[dict]:
    """The setting's responses (cache lookups) with every judge's label, one row per generated prompt."""
    gen = [p for p in run["prompts"] if p.get("generate")]
    out = []
    for p, token in zip(gen, first_tokens(run, gen, scheme, setting)):
        key = (p["id"], token)
        if key not in run["cache"]:
            raise DataError(f"no cached response for {key}: rerun the generate stage")
        out.append({"id": p["id"], "prompt": p["prompt"], "category": p["category"], "subcategory": p.get("subcategory"),
                    "should_refuse": p["should_refuse"], "first_token": None if token == FREE else token,
                    "text": run["cache"][key], "labels": {j: run["labels"][j][key] for j in judges}})
    return out


def cells(benchmark: str, model: str, scheme: str, run: Mapping, setting: Setting, judges: Sequence[str]) -> list[dict]:
    """Long-format rows (one per split × judge) for one (model, setting) on one benchmark."""
    rows = []
    done = completions(run, scheme, setting, judges)
    scored_tokens = first_tokens(run, run["prompts"], scheme, setting) if scheme != "none" else []
    for should_refuse in sorted({bool(p["should_refuse"]) for p in run["prompts"]}, reverse=True):
        split = split_name(benchmark, should_refuse)
        gen = [c for c in done if bool(c["should_refuse"]) == should_refuse]
        base = {"benchmark": benchmark, "split": split, "should_refuse": should_refuse, "model": model, "setting": setting.name,
                "threshold": setting.threshold, "column": column(model, setting),
                "reference_pct": REFERENCE.get((benchmark, split))}  # published, in %; rates here are fractions
        for judge in judges:
            if judge == "token":
                if scheme == "none":
                    continue
                # a greedy decision that is no scheme token (free) has no token label: unlabelled, as in judge.py
                labels = [None if t == FREE else is_refusal(t) for p, t in zip(run["prompts"], scored_tokens)
                          if bool(p["should_refuse"]) == should_refuse]
                agree = None
            else:
                labels = [c["labels"][judge] for c in gen]
                pairs = [(is_refusal(c["first_token"]), c["labels"][judge]) for c in gen
                         if c["first_token"] is not None and c["labels"][judge] is not None]
                agree = sum(a == b for a, b in pairs) / len(pairs) if pairs else None
            rows.append({**base, "judge": judge, **rate(labels), "token_judge_agreement": agree})
    return rows


def build(generations: str | os.PathLike, labels: str | os.PathLike, models: Mapping[str, str],
          benchmarks_: Sequence[str], judges: Sequence[str], thresholds: Mapping[str, Mapping],
          completions_dir: str | os.PathLike | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """The long table and each benchmark's status (``ok`` or ``not run: …`` from the generate stage).

    ``models``: name → scheme. ``thresholds``: name → calibration.json's chosen thresholds. Writes one completions
    file per (model, benchmark, setting) under ``completions_dir`` when given."""
    rows, status = [], {}
    for model, scheme in models.items():
        meta = json.loads((Path(generations) / model / "run.json").read_text())
        for benchmark in benchmarks_:
            state = meta["status"].get(benchmark, "not run: not in this generate run")
            if state == "ok" or benchmark not in status:  # shown when any model ran it
                status[benchmark] = state
            if state != "ok":
                continue
            run = load_run(generations, labels, model, benchmark, [j for j in judges if j != "token"] + ["token"])
            for setting in model_settings(scheme, thresholds.get(model)):
                if completions_dir:
                    write_jsonl(Path(completions_dir) / model / benchmark / f"{setting.name}.jsonl",
                                completions(run, scheme, setting, judges))
                rows += cells(benchmark, model, scheme, run, setting, judges)
    return pd.DataFrame(rows), status


def _cell(row: pd.Series | None) -> str:
    if row is None or pd.isna(row["rate"]):
        return "–"
    return f"{100 * row['rate']:.1f} [{100 * row['ci_low']:.0f}–{100 * row['ci_high']:.0f}]"


def wide(table: pd.DataFrame, status: Mapping[str, str], judge: str, notes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Rows benchmark × split, columns model · setting (+ n and the reference), cells "rate [CI]" for one judge;
    benchmarks that did not run read their status, never a number."""
    part = table[table["judge"] == judge]
    columns = list(dict.fromkeys(part["column"]))
    out = []
    for benchmark, state in status.items():
        if state != "ok":  # a reason, never a number
            reason = "not run: Hub unreachable" if "Hub" in state else state[:80]
            refs = ", ".join(f"{s} {v:.2f}" for (b, s), v in REFERENCE.items() if b == benchmark) or "–"
            out.append({"benchmark": benchmark + (notes or {}).get(benchmark, ""), "split": "all", "n": "",
                        **{c: reason if i == 0 else "" for i, c in enumerate(columns)},
                        "reference (Refuse-Llama-3-8B)": refs})
            continue
        for split in dict.fromkeys(part[part["benchmark"] == benchmark]["split"]):
            here = part[(part["benchmark"] == benchmark) & (part["split"] == split)]
            ns = sorted(set(here["n"]))
            ref = REFERENCE.get((benchmark, split))
            out.append({"benchmark": benchmark + (notes or {}).get(benchmark, ""), "split": split,
                        "n": "/".join(str(n) for n in ns),
                        **{c: _cell(here[here["column"] == c].iloc[0]) if (here["column"] == c).any() else "n/a"
                           for c in columns},
                        "reference (Refuse-Llama-3-8B)": f"{ref:.2f}" if ref is not None else "–"})
    return pd.DataFrame(out)


def markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def outcomes_by_group(generations, labels, model: str, benchmark: str, judge: str, group: str = "category",
                      scheme: str = "none", setting: Setting | None = None, only_split: bool | None = None) -> pd.DataFrame:
    """Judged refusal / compliance shares per group (CoCoNot category, XSTest type) for stacked bars."""
    run = load_run(generations, labels, model, benchmark, [judge])
    done = completions(run, scheme, setting or Setting(DEFAULT), [judge])
    rows = []
    for g in sorted({c[group] for c in done}):
        labels_ = [c["labels"][judge] for c in done if c[group] == g
                   and (only_split is None or bool(c["should_refuse"]) == only_split)]
        r = rate(labels_)
        if r["n"]:
            rows.append({"model": model, "group": f"{g} (n={r['n']})", "refusal": r["rate"], "compliance": 1 - r["rate"]})
    return pd.DataFrame(rows)


def takeaways(table: pd.DataFrame, judge: str, token_model: str, baselines: Sequence[str],
              pairs: Sequence[tuple[str, str, str]] = (("coconot_original", "coconot_contrast", "CoCoNot"),
                                                         ("xstest", "xstest", "XSTest"))) -> list[str]:
    """The table in sentences, formatted from its cells (the ``judge``'s refusal rates with Wilson intervals): per
    benchmark pair (should refuse, should answer), the token model's greedy column and each of its threshold
    settings beside the baselines. A pair whose cells are missing (not run) says so instead of a number."""
    rows = table[table["judge"] == judge]

    def cell(benchmark: str, refuse: bool, col: str) -> str:
        hit = rows[(rows["benchmark"] == benchmark) & (rows["should_refuse"] == refuse) & (rows["column"] == col)]
        if hit.empty or pd.isna(hit.iloc[0]["rate"]):
            return "not measured"
        r = hit.iloc[0]
        return f"{r['rate']:.0%} [{r['ci_low']:.0%}–{r['ci_high']:.0%}]"

    columns = list(dict.fromkeys(rows.loc[rows["model"] == token_model, "column"]))
    out = []
    for refuse_bench, answer_bench, label in pairs:
        if not columns:
            out.append(f"{label}: no cells for {token_model} (not run).")
            continue
        parts = [f"{col}: refuses {cell(refuse_bench, True, col)} of what it should refuse and "
                 f"{cell(answer_bench, False, col)} of what it should answer" for col in columns]
        base = [f"{b}: {cell(refuse_bench, True, b)} / {cell(answer_bench, False, b)}" for b in baselines]
        out.append(f"{label} ({judge} judge) — " + "; ".join(parts) + ". Without a dial: " + "; ".join(base) + ".")
    return out


def chosen_thresholds(calibration_file: str | os.PathLike, models: Mapping[str, str], smoke: bool) -> dict:
    """The thresholds notebook 03 chose on the validation split (``calibration.json``). In a smoke run without one
    (notebook 04 run alone), fixed stand-ins, said out loud; otherwise a missing file is an error."""
    path = Path(calibration_file)
    if path.is_file():
        return json.loads(path.read_text())["thresholds"]
    if smoke:
        print("smoke: no calibration.json yet; using thresholds 0.5 / 0.3 / 0.7")
        return {m: {"best_f1": {"threshold": 0.5}, "strict": {"threshold": 0.3}, "lenient": {"threshold": 0.7}}
                for m, s in models.items() if s != "none"}
    raise FileNotFoundError(f"{path} is missing: run `dvc repro calibration` first")


def claims(table: pd.DataFrame, judge: str, token_model: str, baselines: Sequence[str]) -> dict:
    """Which differences between the token model's settings and the retrained baselines the Wilson 95% intervals
    let us claim: per benchmark split, every (setting, baseline) pair whose intervals do not overlap, and how many
    pairs do overlap (differences within the noise). Settings whose cell equals an earlier setting's (two settings
    at the same threshold) are counted once."""
    rows = table[(table["judge"] == judge) & table["rate"].notna()]
    separated, overlapping = [], 0
    for (benchmark, split), group in rows.groupby(["benchmark", "split"], sort=False):
        mine = group[group["model"] == token_model].drop_duplicates(subset=["refusals", "n"])
        for _, a in mine.iterrows():
            for _, b in group[group["model"].isin(baselines)].iterrows():
                if a["ci_low"] > b["ci_high"] or b["ci_low"] > a["ci_high"]:
                    higher = "above" if a["rate"] > b["rate"] else "below"
                    separated.append(f"{benchmark} ({split}): {a['column']} {a['rate']:.0%} "
                                     f"[{a['ci_low']:.0%}–{a['ci_high']:.0%}] is {higher} {b['column']} "
                                     f"{b['rate']:.0%} [{b['ci_low']:.0%}–{b['ci_high']:.0%}]")
                else:
                    overlapping += 1
    return {"separated": separated, "overlapping": overlapping, "pairs": len(separated) + overlapping}


def reference_comparison(table: pd.DataFrame, judge: str, token_model: str) -> list[str]:
    """Per benchmark split with a published Refuse-Llama number (``REFERENCE``): the token model's rate without
    intervention (its greedy column) beside it, and whether the published value lies inside its Wilson interval."""
    rows = table[(table["judge"] == judge) & (table["model"] == token_model) & table["rate"].notna()
                 & table["reference_pct"].notna()]
    out = []
    for _, r in rows[rows["setting"] == "default"].iterrows():  # no intervention: the greedy token
        ref = r["reference_pct"] / 100
        where = ("inside" if r["ci_low"] <= ref <= r["ci_high"] else
                 "below" if ref < r["ci_low"] else "above")
        out.append(f"{r['benchmark']} ({r['split']}): {r['rate']:.0%} [{r['ci_low']:.0%}–{r['ci_high']:.0%}] here, "
                   f"{ref:.0%} for Refuse-Llama ({where} this interval)")
    return out


def write_outputs(root: str | os.PathLike, table: pd.DataFrame, status: Mapping[str, str], generation: Mapping,
                  thresholds: Mapping, main: pd.DataFrame, token_table: pd.DataFrame, primary_judge: str) -> str:
    """Write ``reports/benchmark_table.{md,csv}`` and ``reports/metrics/benchmarks.json`` under ``root``; returns
    the markdown. The judge-quality line is read from ``reports/metrics/judge_card.json`` when it exists."""
    root = Path(root)
    card_file = root / "reports" / "metrics" / "judge_card.json"
    card = json.loads(card_file.read_text())["judges"] if card_file.is_file() else {}
    quality = "; ".join(f"{name}: accuracy {j['overall']['accuracy']:.3f}, κ {j['overall']['cohen_kappa']:.3f} "
                        f"(n {j['overall']['n']})" for name, j in card.items() if j["overall"]["accuracy"] is not None)
    text = "\n".join([
        "# Benchmark table", "",
        f"Refusal rate in % with Wilson 95% intervals. Generation: greedy, max_new_tokens "
        f"{generation['max_new_tokens']}, {generation['dtype']} on {generation['device']}. Judge quality on XSTest's "
        f"human labels: {quality or 'n/a'}.",
        "Thresholds (chosen on the validation split): " + "; ".join(
            f"{m}: " + ", ".join(f"{k} {v['threshold']:g}" for k, v in t.items()) for m, t in thresholds.items()) + ".",
        "Samples are stratified (equal share per category, or per prompt type for XSTest): a cell is the unweighted "
        "mean over categories, not the rate over the whole benchmark. Reference: Refuse-Llama-3-8B over the full "
        "benchmarks (judge Llama-3.3-70B), Alagharu et al., arXiv 2603.13359, Table 1. CoCoNot rows use "
        "the held-out test parts only (original: its test part; contrast: its test half; notebook 01).", "",
        f"## Judge: {primary_judge} (n = generated prompts)", "", markdown(main), "",
        "## Judge: token (n = scored prompts; models with tokens)", "", markdown(token_table), ""])
    metrics = {"status": dict(status), "generation": dict(generation), "thresholds": dict(thresholds),
               "cells": json.loads(table.to_json(orient="records"))}
    write_texts([(root / "reports" / "benchmark_table.md", text),
                 (root / "reports" / "benchmark_table.csv", table.to_csv(index=False)),
                 (root / "reports" / "metrics" / "benchmarks.json", json.dumps(metrics, indent=2, sort_keys=True) + "\n")])
    return text
