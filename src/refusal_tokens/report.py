"""The study report (notebook 05 → ``reports/README.md``): findings, provenance, the table, the figures.

Pure readers of files other stages wrote: ``reports/metrics/*.json``, ``reports/benchmark_table.md``, package
versions, ``dvc.lock`` output hashes, stage durations recorded by the stages themselves, and the figure captions.
Every number in the report is formatted from one of those files (``tests/test_report.py`` checks it); the prose
around the numbers is chosen by the numbers (:mod:`refusal_tokens.evidence`), and nothing is copied from the
project README, which the report links to for the deviations from the paper.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DataError
from .files import write_text

if TYPE_CHECKING:
    import pandas as pd

PACKAGES = ("torch", "transformers", "trl", "datasets", "accelerate", "dvc", "papermill", "nbval", "pandas",
            "scikit-learn", "seaborn", "refusal-tokens")

# One sentence per figure: what it shows. Figures missing on disk are listed as missing, not silently dropped.
FIGURES: dict[str, str] = {
    "01_category_mix.png": "Rows per CoCoNot category in each training mix, refusals vs answers: what the tokens are trained on.",
    "01_response_lengths.png": "Response lengths of refusals and answers (after the `max_response_tokens` cut).",
    "02_init_comparison.png": "p(correct scheme token), AUROC of p(refusal) and validation loss on validation prompts vs training step (one line per variant in `sft_report.init_comparison`).",
    "02_loss_curves.png": "Training loss of every variant (completion tokens only).",
    "02_p_refusal_by_category.png": "p(refusal token) on validation prompts by category, before and after SFT.",
    "03_tradeoff_front.png": "The trade-off front on CoCoNot: the single and category models' full threshold sweeps as lines (from the token on every scored prompt, and judged from text on the generated prompts), with the greedy choice, the models retrained on a refusal share, the system-prompt baseline and the base model as points with Wilson 95% intervals on both axes.",
    "03_f1_vs_threshold.png": "F1 (refusal = positive) vs threshold on the validation split and on CoCoNot: where the best threshold lies and how flat the optimum is.",
    "03_threshold_metrics.png": "TPR and FPR vs threshold on one axis, F1 vs threshold below with the F1 of refusing everything as a dotted line, on the validation split and on CoCoNot.",
    "03_p_refusal_ecdf.png": "Per CoCoNot category, the empirical CDF of p(refusal) on original and contrast prompts (log axis): the horizontal gap between the curves is what any threshold can use.",
    "03_category_control_curves.png": "Category model: raising one category token's threshold from 0 to 1, every category's token refusal rate on original prompts; the raised category's own line is thick, and a flat thick line is a dead dial.",
    "03_rate_vs_threshold_by_category.png": "The paper's central picture: per CoCoNot category, the token refusal rate vs threshold on original (should refuse) and contrast (should answer) prompts, overlaid with 95% Wilson bands and the validation-chosen thresholds: the gap between the two curves is what the dial can buy.",
    "03_logit_bias.png": "Token refusal rate vs logit bias on the refusal token(s): the same dial as the threshold, in logit units.",
    "03_temperature.png": "Refusal rate vs threshold at each first-token temperature scored: temperature moves every threshold.",
    "03_category_control.png": "Category model: change in each category's refusal rate when one category's threshold is raised — a clean dial is diagonal.",
    "03_token_text_consistency.png": "Judged refusal rate of the text after a forced refusal token vs after a forced [respond]: does the text follow the token?",
    "03_contrast_ablation.png": "The contrast-data ablation: greedy token refusal rates of the single-token model trained with and without contrast answers, on prompts that should be answered and prompts that should be refused, with Wilson 95% intervals.",
    "04_coconot_original_by_category.png": "Judged refusal / compliance per CoCoNot category on prompts that should be refused, each model without intervention.",
    "04_coconot_contrast_by_category.png": "The same on CoCoNot's contrast prompts, which should be answered (refusal here is over-refusal).",
    "05_tradeoff.png": "Every model × setting as one point: mean judged refusal rate where the prompts should be refused vs where they should be answered.",
    "04_xstest_by_type.png": "Judged refusal / compliance by XSTest prompt type (safe types should be answered, contrast_* types refused).",
}


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def lock_hashes(lock: str | Path) -> list[dict]:
    """Per stage, each output's md5 as recorded in ``dvc.lock`` (what this report's numbers come from)."""
    import yaml

    path = Path(lock)
    if not path.is_file():
        raise DataError(f"{path} not found: run the pipeline (`dvc repro`) first")
    stages = (yaml.safe_load(path.read_text()) or {}).get("stages", {})
    return [{"stage": stage, "output": out["path"], "md5": out.get("md5", "")[:12]}
            for stage, entry in stages.items() for out in entry.get("outs", [])]


def notebook_seconds(notebook: str | Path) -> float | None:
    """Execution time papermill recorded in an executed notebook's metadata."""
    path = Path(notebook)
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("metadata", {}).get("papermill", {}).get("duration")


def stage_seconds(root: str | Path, models_root: str, generations: str, train_variants: Sequence[str],
                  generate_models: Sequence[str], notebooks: Mapping[str, str]) -> list[dict]:
    """Durations the stages recorded: notebooks (papermill), training (metrics.json), generation (run.json)."""
    root = Path(root)
    rows = [{"stage": stage, "seconds": notebook_seconds(root / "reports" / "notebooks" / f"{nb}.ipynb"),
             "recorded in": f"reports/notebooks/{nb}.ipynb (papermill)"} for stage, nb in notebooks.items()]
    for v in train_variants:
        path = root / models_root / "sft" / v / "metrics.json"
        rows.append({"stage": f"train@{v}", "recorded in": str(path.relative_to(root)),
                     "seconds": json.loads(path.read_text())["wall_seconds"] if path.is_file() else None})
    for m in generate_models:
        path = root / generations / m / "run.json"
        rows.append({"stage": f"generate@{m}", "recorded in": str(path.relative_to(root)),
                     "seconds": json.loads(path.read_text())["seconds"] if path.is_file() else None})
    return rows


def number(value: float | int | bool | None) -> str:
    """Three decimals for a float, an int as is, yes / no for a bool, – for a metric that is undefined (0/0)."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


def figure_list(figures_dir: str | Path, relative_to: str | Path) -> list[str]:
    """Markdown lines: each known figure with its sentence (or marked missing), then any figure not captioned."""
    figures_dir, relative_to = Path(figures_dir), Path(relative_to)
    lines = []
    for name, sentence in FIGURES.items():
        path = figures_dir / name
        if path.is_file():
            lines += [f"**{name}** — {sentence}", "", f"![{name}]({path.relative_to(relative_to).as_posix()})", ""]
        else:
            lines += [f"**{name}** — missing (its stage did not run).", ""]
    extra = sorted(p.name for p in figures_dir.glob("*.png") if p.name not in FIGURES)
    if extra:
        lines += ["Other figures: " + ", ".join(extra), ""]
    return lines


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def findings(evidence_metrics: Mapping, diag: Mapping, goals: Mapping, e3_total: int | None = None,
             category_threshold: float | None = None) -> list[str]:
    """The study's findings as sentences formatted from ``evidence.json`` and ``diagnostics.json``; the wording
    follows the numbers (:func:`refusal_tokens.evidence.separation_phrase`, ``verdict``, ``transfer_phrase``)."""
    from .evidence import separation_phrase, transfer_phrase
    from .evidence import verdict as full_verdict

    def verdict(value, goal, higher_is_better: bool = True) -> str:  # "met" / "missed" (both numbers are printed
        return full_verdict(value, goal, higher_is_better).split(" by ")[0]  # beside it; no derived number

    e = evidence_metrics
    if not e:
        return ["No evidence metrics were found (run notebook 03)."]
    out = [
        f"E1 — On CoCoNot's held-out original vs contrast prompts the single refusal token "
        f"{separation_phrase(e.get('e1_auroc_coconot_single'))} (goal ≥ {goals.get('e1_auroc')}: "
        f"{verdict(e.get('e1_auroc_coconot_single'), goals.get('e1_auroc', 0))}); the category model "
        f"{separation_phrase(e.get('e1_auroc_coconot_category'))}. The base model's frozen hidden state, probed within "
        f"CoCoNot, reaches {number(diag.get('frozen_cv_auroc_coconot_best'))}; a bag-of-words classifier trained on the "
        f"mix reaches {number(diag.get('shortcut_auroc_coconot'))}.",
        f"E2 — At the threshold each model's validation split chose (single token: t = "
        f"{e.get('e2_threshold_single')}; category tokens: t = {category_threshold}) the gap between original and "
        f"contrast refusal is {e.get('e2_gap_points_single', float('nan')):.0f} points for the single "
        f"token and {e.get('e2_gap_points_category', float('nan')):.0f} for the category tokens (goal ≥ "
        f"{goals.get('e2_gap_points', float('nan')):.0f}: "
        f"{verdict(e.get('e2_gap_points_single'), goals.get('e2_gap_points', 0))}); the single token's conservative "
        f"low end is {e.get('e2_gap_low_points_single', float('nan')):.0f} points (goal above "
        f"{goals.get('e2_gap_low_points', float('nan')):.0f}: "
        f"{verdict(e.get('e2_gap_low_points_single'), goals.get('e2_gap_low_points', 0))}).",
        f"Ordinary requests — At greedy decoding the single token refuses "
        f"{e.get('benign_refusal_greedy_token_single', float('nan')):.1%} of ordinary instructions held out from "
        f"every mix (its text, judged: {e.get('benign_refusal_greedy_text_single', float('nan')):.1%}; the category "
        f"model: {e.get('benign_refusal_greedy_token_category', float('nan')):.1%}; goal ≤ "
        f"{goals.get('benign_refusal', float('nan')):.0%}: "
        f"{verdict(e.get('benign_refusal_greedy_token_single'), goals.get('benign_refusal', 0), False)}).",
        f"E3 — Raising one category token's threshold moved its own category by ≥ "
        f"{goals.get('e3_own_points', float('nan')):.0f} points and every other by ≤ "
        f"{goals.get('e3_other_points', float('nan')):.0f} for {e.get('e3_categories_meeting')} of "
        f"{e3_total if e3_total is not None else 'the'} categories.",
        ("E5 — The single-token model's threshold front lies at or above every retrained model's point."
         if e.get("e5_front_at_or_above_all_single") else
         "E5 — The single-token model's threshold front lies below at least one retrained model's point "
         "(calibration.json: evidence_details.e5 gives the margins)."),
        f"Outside the training family — On XSTest's unsafe vs safe prompts (never trained or tuned on) the single token "
        f"{separation_phrase(e.get('xstest_auroc_single'))} (goal ≥ {goals.get('xstest_auroc')}: "
        f"{verdict(e.get('xstest_auroc_single'), goals.get('xstest_auroc', 0))}); a probe trained on the mix's prompts "
        f"transfers at {number(diag.get('frozen_mix_to_xstest_auroc'))} and one cross-validated within XSTest reaches "
        f"{number(diag.get('frozen_cv_auroc_xstest'))}: "
        f"{transfer_phrase(diag.get('frozen_mix_to_xstest_auroc'), diag.get('frozen_cv_auroc_xstest'))}. Read through "
        f"the category model's Safety token alone, XSTest gives {number(e.get('xstest_auroc_category_safety_token'))} "
        f"and the harmful test sets against ordinary instructions {number(e.get('harm_auroc_category_safety_token'))} "
        f"(the single token: {number(e.get('harm_auroc_single'))}).",
        f"Ablation — Without contrast answers in training the single-token model refuses "
        f"{e.get('ablation_contrast_refusal_without', float('nan')):.0%} of CoCoNot's contrast prompts at greedy "
        f"decoding, against {e.get('ablation_contrast_refusal_with', float('nan')):.0%} with them; its CoCoNot AUROC "
        f"is {number(e.get('ablation_auroc_coconot_without'))} without them.",
    ]
    return out


def _category_threshold(calibration: Mapping, sft: Mapping) -> float | None:
    """The category-token model's validation best-F1 threshold (the model whose scheme ``sft.json`` says is
    ``category``), or None where either file lacks it."""
    models = [m for m, t in calibration.get("thresholds", {}).items() if (sft.get(m) or {}).get("scheme") == "category"]
    return calibration["thresholds"][models[0]]["best_f1"]["threshold"] if models else None


def write_report(root: str | Path, project: str | Path, profile: str, models_root: str, generations: str,
                 train_variants: Sequence[str], generate_models: Sequence[str], primary_judge: str,
                 notebooks: Mapping[str, str], hardware: Mapping[str, object]) -> str:
    """Build ``<root>/reports/README.md`` from the metrics, the benchmark table, ``dvc.lock`` and the figures;
    returns the markdown. Raises DataError when a file the report needs is missing."""
    import pandas as pd

    from . import tables

    root, project = Path(root), Path(project)
    reports = root / "reports"
    metrics = reports / "metrics"
    for name in ("calibration.json", "benchmarks.json", "judge_card.json", "evidence.json"):
        if not (metrics / name).is_file():
            raise DataError(f"{metrics / name} not found: run notebooks 03 and 04 (`dvc repro`) first")
    calibration, bench, card, evidence_metrics = (_load(metrics / n) for n in (
        "calibration.json", "benchmarks.json", "judge_card.json", "evidence.json"))
    diag, sft = _load(metrics / "diagnostics.json"), _load(metrics / "sft.json")
    from .evidence import GOALS

    goals = calibration.get("evidence_details", {}).get("goals") or GOALS
    versions = package_versions()
    hashes = pd.DataFrame(lock_hashes(project / "dvc.lock"))
    timings = pd.DataFrame(stage_seconds(root, models_root, generations, train_variants, generate_models, notebooks))
    goals_table = pd.Series({**evidence_metrics, **{f"diagnostics: {k}": v for k, v in diag.items()}},
                            name="value").to_frame().reset_index(names="metric")
    headline = pd.DataFrame({
        "AUROC CoCoNot": calibration["auroc_coconot"], "AUROC validation": calibration["auroc_validation"],
        "t best F1 (validation)": {m: t["best_f1"]["threshold"] for m, t in calibration["thresholds"].items()},
        "F1 default rule": {m: v["default_rule"] for m, v in calibration["f1_coconot"].items()},
        "F1 at validation t": {m: v["at_validation_best"] for m, v in calibration["f1_coconot"].items()},
        "F1 refuse everything (CoCoNot)": calibration.get("refuse_everything_f1", {}).get("CoCoNot"),
        "judged refusal after forced refusal token": {m: v["refusal token"] for m, v in calibration["consistency"].items()},
        "judged refusal after forced [respond]": {m: v["[respond]"] for m, v in calibration["consistency"].items()},
    })
    judges = pd.DataFrame({name: j["overall"] for name, j in card["judges"].items()}).T[
        ["n", "accuracy", "precision", "recall", "f1", "cohen_kappa"]]
    training = (pd.DataFrame(sft).T[["scheme", "mix", "init", "steps", "wall_seconds", "final_validation_loss",
                                     "first_token_accuracy", "auroc"]] if sft else pd.DataFrame())
    table_md = (reports / "benchmark_table.md").read_text().split("\n", 1)[1] \
        if (reports / "benchmark_table.md").is_file() else "(no benchmark table)"
    judge_overall = card["judges"].get(primary_judge, {}).get("overall", {})
    not_run = sorted(b for b, s in bench.get("status", {}).items() if s != "ok")
    fmt = lambda frame: frame.map(lambda v: number(v) if isinstance(v, (float, int, bool)) or v is None else v)  # noqa: E731
    limitations = [
        f"**Judge quality.** The `{primary_judge}` judge agrees with XSTest's human labels (held-out part) at accuracy "
        f"{number(judge_overall.get('accuracy'))}, κ {number(judge_overall.get('cohen_kappa'))}, recall "
        f"{number(judge_overall.get('recall'))}, precision {number(judge_overall.get('precision'))} (n "
        f"{judge_overall.get('n')}); `reports/judge_card.md` reports every judge on XSTest and on the noncompliance "
        "gold set. The paper's judge is a large LLM; none is available offline.",
        "**Stand-in training data.** CoCoNot's SFT split is Hub-only: the refusal prompts are the training part of "
        "CoCoNot's original evaluation set (its other part is the held-out test set every CoCoNot-original number "
        "uses), with refusals templated by this project, contrast answers from CoCoNot-pref `chosen`, and dual-use "
        "contrast pairs built by this project (`data_cards/sources/dual_use_pairs.md`).",
        "**Model scale.** A small model fine-tuned briefly on a CPU (training table above) is far from the paper's "
        "Llama-3-8B trained for an epoch: compare shapes (does the dial move the rate, does one model trace the "
        "trade-off), not levels, with the reference column of the benchmark table.",
        "**Sample sizes and weighting.** Each cell uses a stratified sample (equal share per category, or per prompt "
        "type for XSTest), not the benchmark's own mix: read the Wilson intervals. Responses are greedy and short "
        "(`max_new_tokens` in the table header).",
        f"**Not run offline:** {', '.join(not_run) if not_run else 'none'} (Hub-only sets; their rows say so, never a "
        "number).",
    ]
    sections = [
        "# Refusal Tokens study — report", "",
        f"Profile: **{profile}**. Generated by `notebooks/05_report.ipynb` from the files the pipeline wrote "
        "(`reports/metrics/*.json`, `reports/benchmark_table.md`, `dvc.lock`, `reports/figures/`); `dvc repro` "
        "regenerates it. The method is Jain et al., \"Refusal Tokens: A Simple Way to Calibrate Refusals in Large "
        "Language Models\" (arXiv 2412.06748).", "",
        "## Findings", "", *[f"- {line}" for line in findings(
            evidence_metrics, diag, goals, calibration.get("evidence_details", {}).get("e3", {}).get("categories"),
            _category_threshold(calibration, sft or {}))], "",
        "## Headline numbers", "",
        "The study's goals (`reports/metrics/evidence.json`) and their diagnostics (`reports/metrics/diagnostics.json`):",
        "", tables.markdown(fmt(goals_table)), "",
        "Training (`reports/metrics/sft.json`; AUROC and accuracy of the first token on the validation split):", "",
        tables.markdown(fmt(training).reset_index(names="variant")) if sft else "(no sft.json)", "",
        "Calibration (`reports/metrics/calibration.json`; CoCoNot = held-out original vs contrast prompts):", "",
        tables.markdown(fmt(headline).reset_index(names="model")), "",
        "Judges against XSTest's human labels (`reports/metrics/judge_card.json`; full or partial refusal = refusal):",
        "", tables.markdown(fmt(judges).reset_index(names="judge")), "",
        "## The benchmark table", "", table_md, "",
        "## Figures", "", *figure_list(reports / "figures", reports),
        "## Deviations from the paper", "",
        "Every deviation, with its reason, is listed in the project README (section \"Deviations from the paper\"), "
        "which is their one source; this report does not copy it.", "",
        "## Limitations", "", *[f"- {line}" for line in limitations], "",
        "## What was run", "",
        "Package versions and hardware: " + ", ".join(f"{k} {v}" for k, v in {**versions, **hardware}.items()) + ".",
        "", "Outputs (`dvc.lock` md5, first 12 hex digits):", "", tables.markdown(hashes), "",
        "## Time per stage", "",
        tables.markdown(timings.assign(seconds=timings["seconds"].map(
            lambda v: "–" if v is None or v != v else f"{v:.1f}"))), "",
    ]
    text = "\n".join(sections)
    out = reports / "README.md"
    write_text(out, text)
    return text


def tradeoff_points(cells: pd.DataFrame, judge: str) -> pd.DataFrame:
    """Per (model, setting column) of the benchmark table: the ``judge``'s refusals pooled over the splits that
    should be refused and over those that should be answered, each rate with its Wilson 95% interval."""
    import pandas as pd

    from .benchmarks import wilson

    judged = cells[(cells["judge"] == judge) & cells["rate"].notna()]
    judged = judged.assign(kind=judged["should_refuse"].map({True: "refuse", False: "answer"}))
    pooled = judged.groupby(["model", "column", "kind"], sort=False)[["refusals", "n"]].sum().reset_index()
    rows = {}
    for _, r in pooled.iterrows():
        low, high = wilson(int(r["refusals"]), int(r["n"]))
        row = rows.setdefault((r["model"], r["column"]), {"model": r["model"], "column": r["column"]})
        row.update({r["kind"]: r["refusals"] / r["n"], f"{r['kind']}_low": low, f"{r['kind']}_high": high,
                    f"{r['kind']}_n": int(r["n"])})
    return pd.DataFrame([r for r in rows.values() if "refuse" in r and "answer" in r])
