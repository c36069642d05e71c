"""Writes notebooks/05_report.ipynb (output-free)."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip()))
code = lambda s, **kw: cells.append(new_code_cell(s.strip(), **kw))

md("""
# 05 · The study report

This notebook gathers what the pipeline produced into `reports/README.md`, a report a reader can check: what was
run (profile, package versions, the `dvc.lock` hashes of every output), how long each stage took, the headline
numbers with their uncertainty, the benchmark table, every figure with a sentence on what it shows, the deviations
from the paper and the limitations. It computes nothing new except one summary figure; every number is read from
a file another stage wrote, so the report cannot drift from the results.
""")

code('''
# Parameters (papermill injects params.yaml's `report` section). Smoke defaults read notebook 03/04's smoke outputs.
out: str = "build/smoke"            # output root; the DVC stage passes "."
smoke: bool = True                  # True: build the toy outputs first if notebooks 03/04 have not
profile: str = "smoke (tiny random models, toy benchmarks: numbers are meaningless)"
readme: str = "README.md"           # the project README: its Deviations section is copied, not rewritten
generations: str = "data/generations"  # generate@<model> outputs (their run.json hold the generation time)
models_root: str = "models/tiny"    # where the trained variants live (their metrics.json hold the training time)
train_variants: list = ["single_r50", "category_r50"]
generate_models: list = ["base", "none_r50", "single_r50", "category_r50"]
primary_judge: str = "string"
''', metadata={"tags": ["parameters"]})

code('''
from refusal_tokens.notebook import check_parameters, project_root, write_params

PARAMS = check_parameters(globals())  # before other imports: unknown names are rejected, not shadowed

import json
import os

import pandas as pd
import torch
from IPython.display import Markdown, display

from refusal_tokens import plots, report, tables

PROJECT = project_root()
ROOT = PROJECT / out
REPORTS = ROOT / "reports"
if smoke and not (REPORTS / "metrics" / "benchmarks.json").is_file():
    raise FileNotFoundError("smoke report: run notebooks 03 and 04 first (nbval runs them in order)")
calibration, bench, card = (json.loads((REPORTS / "metrics" / name).read_text())
                            for name in ("calibration.json", "benchmarks.json", "judge_card.json"))
sft_file = REPORTS / "metrics" / "sft.json"
sft = json.loads(sft_file.read_text()) if sft_file.is_file() else {}  # smoke: notebook 02 writes it too
''')

md("""
## 1 · What was run
""")

code('''
versions = report.package_versions()
hardware = {"cpu threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(), "cores": os.cpu_count()}
hashes = pd.DataFrame(report.lock_hashes(PROJECT / "dvc.lock"))
display(pd.Series({**versions, **hardware}, name="version / value").to_frame())
hashes
''')

md("""
## 2 · Time per stage

Durations as the stages recorded them (papermill for notebooks, `metrics.json` for training, `run.json` for
generation). Stages that record nothing (model preparation, tokens, judging) are timed in the README.
""")

code('''
notebooks = {"data_tagging": "01_data_tagging", "sft_report": "02_sft", "calibration": "03_calibration",
             "benchmark_table": "04_benchmark_table"}
timings = pd.DataFrame(report.stage_seconds(ROOT, models_root, generations, train_variants, generate_models, notebooks))
timings
''')

md("""
## 3 · Headline numbers

From `reports/metrics/calibration.json`: how well p(refusal) separates CoCoNot's original from its contrast
prompts (AUROC), the thresholds chosen on the validation split, F1 on CoCoNot, and how much of the text follows a
forced token. From `reports/metrics/judge_card.json`: how well each judge agrees with XSTest's human labels.
""")

code('''
headline = pd.DataFrame({
    "AUROC CoCoNot": calibration["auroc_coconot"], "AUROC validation": calibration["auroc_validation"],
    "t best F1 (validation)": {m: t["best_f1"]["threshold"] for m, t in calibration["thresholds"].items()},
    "F1 default rule": {m: v["default_rule"] for m, v in calibration["f1_coconot"].items()},
    "F1 at validation t": {m: v["at_validation_best"] for m, v in calibration["f1_coconot"].items()},
    "judged refusal after forced refusal token": {m: v["refusal token"] for m, v in calibration["consistency"].items()},
    "judged refusal after forced [respond]": {m: v["[respond]"] for m, v in calibration["consistency"].items()},
})
judges = pd.DataFrame({name: j["overall"] for name, j in card["judges"].items()}).T[
    ["n", "accuracy", "precision", "recall", "f1", "cohen_kappa"]]
training = pd.DataFrame(sft).T[["scheme", "mix", "init", "steps", "wall_seconds", "final_validation_loss",
                                  "first_token_accuracy", "auroc"]] if sft else pd.DataFrame()
training = training.map(lambda v: round(v, 3) if isinstance(v, float) else v)
display(training)
display(headline)
judges
''')

md("""
## 4 · The trade-off in one figure

Each point is one column of the benchmark table (a model under a setting): its mean judged refusal rate over the
splits that should be refused (x: higher is safer) and over the splits that should be answered (y: lower is more
helpful). The tokens' settings of one model trace a path; the `none` models are one point per training run.
""")

code('''
cells = pd.DataFrame(bench["cells"])
judged = cells[cells["judge"] == primary_judge].dropna(subset=["rate"])
judged = judged.assign(kind=judged["should_refuse"].map({True: "refuse", False: "answer"}))
tradeoff = judged.pivot_table(index=["model", "column"], columns="kind", values="rate", aggfunc="mean").reset_index()
fig = plots.tradeoff(tradeoff, REPORTS / "figures" / "05_tradeoff.png", judge=primary_judge)
tradeoff
''')

md("""
## 5 · Writing `reports/README.md`
""")

code('''
table_md = (REPORTS / "benchmark_table.md").read_text().split("\\n", 1)[1]
deviations = report.readme_section(PROJECT / readme, "Deviations from the paper")
string_card = card["judges"].get(primary_judge, {}).get("overall", {})
not_run = sorted(b for b, s in bench["status"].items() if s != "ok")
limitations = [
    f"**Judge quality.** The `{primary_judge}` judge agrees with XSTest's human labels at accuracy "
    f"{report.number(string_card.get('accuracy'))}, κ {report.number(string_card.get('cohen_kappa'))}, recall "
    f"{report.number(string_card.get('recall'))}, precision {report.number(string_card.get('precision'))} (n {string_card.get('n')}): it "
    "misses refusals phrased other ways and calls some answers refusals, so judged rates are biased both ways. "
    "The paper's judge is an LLM (Llama-3.3-70B); a local 135M model is no usable "
    "judge (see the judge card), and no larger one is available offline.",
    "**Stand-in training data.** The refusal data are public stand-ins for CoCoNot's SFT split with template "
    "refusals, covering 6 of CoCoNot's subcategories (README: Deviations).",
    "**Model scale.** SmolLM2-135M trained for 20 steps on a CPU is far from Llama-3-8B trained for an epoch: "
    "compare shapes (does the dial move the rate, does one model trace the trade-off), not levels, with the reference column.",
    "**Sample sizes and weighting.** Each cell uses a category-balanced stratified sample (equal share per "
    "category, so not the benchmark's own mix) (a few dozen generated prompts; more for token rates): "
    "read the Wilson intervals. Responses are greedy and short (`max_new_tokens` in the table header).",
    "**SORRY-Bench** is a partial third-party copy (449 of 450 base prompts; categories inferred).",
    f"**Not run offline:** {', '.join(not_run) if not_run else 'none'} (Hub-only sets; their rows say so, never a number).",
]
sections = [
    "# Refusal Tokens study — report", "",
    f"Profile: **{profile}**. Generated by `notebooks/05_report.ipynb`; every number below is read from a file the "
    "pipeline wrote (`reports/metrics/*.json`, `reports/benchmark_table.md`), which `dvc repro` regenerates.", "",
    "## What was run", "",
    "Package versions and hardware: " + ", ".join(f"{k} {v}" for k, v in {**versions, **hardware}.items()) + ".", "",
    "Outputs (`dvc.lock` md5, first 12 hex digits):", "", tables.markdown(hashes), "",
    "## Time per stage", "", tables.markdown(timings.round(1).fillna("–")), "",
    "## Headline numbers", "",
    "Training (`reports/metrics/sft.json`; AUROC and accuracy of the first token on the validation split):", "",
    tables.markdown(training.reset_index(names="variant")) if sft else "(no sft.json)", "",
    "Calibration (`reports/metrics/calibration.json`; CoCoNot = original vs contrast prompts):", "",
    tables.markdown(headline.round(3).reset_index(names="model")), "",
    "Judges against XSTest's human labels (full or partial refusal = refusal):", "", tables.markdown(judges.astype(float).round(3).reset_index(names="judge")), "",
    "## The benchmark table", "", table_md, "",
    "## Figures", "", *report.figure_list(REPORTS / "figures", REPORTS),
    "## Deviations from the paper", "", "(Copied from the project README.)", "", deviations, "",
    "## Limitations", "", *[f"- {line}" for line in limitations], "",
]
(REPORTS / "README.md").write_text("\\n".join(sections))
write_params(PARAMS, REPORTS / "params" / "report.json")
plots.close([fig])
display(Markdown("\\n".join(sections[:40])))
''')

nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                         "language_info": {"name": "python"}})
nbformat.write(nb, "notebooks/05_report.ipynb")
