"""The study report (notebook 05 → ``reports/README.md``): provenance, the table, the figures, the deviations.

Pure readers of files other stages wrote: package versions, ``dvc.lock`` output hashes, stage durations recorded
by the stages themselves, the README's Deviations section (one source of truth), and the figure captions.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import DataError

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
    "03_temperature.png": "Refusal rate vs threshold at first-token temperatures 0.5, 1 and 2: temperature moves every threshold.",
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


def readme_section(readme: str | Path, title: str) -> str:
    """The body of a ``## title`` section of a markdown file (up to the next ``## ``)."""
    text = Path(readme).read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}[^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    if not match:
        raise DataError(f"{readme} has no '## {title}' section")
    return match.group(1).strip()


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
