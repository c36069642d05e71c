"""Writes notebooks/04_benchmark_table.ipynb (output-free)."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip()))
code = lambda s, **kw: cells.append(new_code_cell(s.strip(), **kw))

md("""
# 04 · The benchmark table: refusal rates across benchmarks, models and control settings

**Paper (Jain et al., 2025, Tables 1–3)** reports refusal rates of refusal-token models on safety benchmarks
(should refuse: higher is better) and over-refusal benchmarks (should answer: lower is better), and shows that one
model with a threshold moves along the trade-off. This notebook builds that table for the study's models:

- **columns**: the untrained base model, the `none` models (no tokens) trained on 25 / 50 / 75 % refusals (the
  usual way to change a refusal rate: retrain), and the `single` / `category` token models under four settings:
  no intervention (greedy token), the threshold with the best F1 on the validation split, a strict and a lenient
  threshold (notebook 03);
- **cells**: refusal rate (%) with its Wilson 95% interval, per judge. The `string` judge reads the response
  text of the *generated* prompts; the `token` judge reads the first token of every *scored* prompt (no text
  needed), so its n is larger. The judge card (notebook 03 §10) says how far to trust the string judge;
- **reference**: the published numbers for the refusal-token Llama-3-8B ("Refuse-Llama", judged by
  Llama-3.3-70B; Alagharu et al., arXiv 2603.13359, Table 1). They are a different model, scale, data and judge:
  a reference point, not a target this CPU study can reach.

Every setting's responses are lookups in the generation cache (at most two responses per prompt); one completions
file per (model, benchmark, setting) is written with every judge's label. Benchmarks that could not be obtained
(Hub-only sets offline) read "not run", never a number.
""")

code('''
# Parameters (papermill injects params.yaml's `benchmark_table` section). Smoke defaults run in seconds under nbval.
out: str = "build/smoke"                    # output root; the DVC stage passes "."
smoke: bool = True                          # True: tiny models + toy benchmarks (built by notebook 03's setup)
generations: str = "data/generations"
labels: str = "data/labels"
completions_dir: str = "data/completions"   # one file per (model, benchmark, setting), written here
calibration_metrics: str = "reports/metrics/calibration.json"   # thresholds chosen on the validation split
models: dict = {"base": "none", "none_r50": "none", "single_r50": "single", "category_r50": "category"}  # name → scheme
benchmarks: list = ["coconot_original", "coconot_contrast", "xstest", "or_bench_hard"]
judges: list = ["string", "token"]          # every judge whose labels the table shows
primary_judge: str = "string"               # the judge of the main table and the figures
''', metadata={"tags": ["parameters"]})

code('''
from refusal_tokens.notebook import check_parameters, project_root, write_params

PARAMS = check_parameters(globals())  # before other imports: unknown names are rejected, not shadowed

import json

import pandas as pd
from IPython.display import Markdown, display

from refusal_tokens import plots, smoke as smoke_setup, tables
from refusal_tokens.control import Setting

ROOT = project_root() / out
if smoke:
    smoke_setup.benchmark_setup(ROOT)
GEN, LAB, FIG = ROOT / generations, ROOT / labels, ROOT / "reports" / "figures"
calibration_file = ROOT / calibration_metrics
if calibration_file.is_file():
    THRESHOLDS = json.loads(calibration_file.read_text())["thresholds"]
elif smoke:  # notebook 04 run alone in smoke mode: fixed stand-ins, said out loud
    THRESHOLDS = {m: {"best_f1": {"threshold": 0.5}, "strict": {"threshold": 0.3}, "lenient": {"threshold": 0.7}}
                  for m, s in models.items() if s != "none"}
    print("smoke: no calibration.json yet; using thresholds 0.5 / 0.3 / 0.7")
else:
    raise FileNotFoundError(f"{calibration_file} is missing: run `dvc repro calibration` first")
RUNS = {m: json.loads((GEN / m / "run.json").read_text()) for m in models}
GENERATION = next(iter(RUNS.values()))["generation"]
print("generation:", GENERATION)
''')

md("""
## 1 · The settings

Thresholds are chosen once, on the validation split of the training mix (notebook 03), and applied unchanged to
every benchmark. `best_f1` maximises F1 there; `strict` keeps validation TPR ≥ 0.95 (refuse more); `lenient`
keeps validation FPR ≤ 0.05 (answer more).
""")

code('''
pd.DataFrame({m: {k: v["threshold"] for k, v in t.items()} for m, t in THRESHOLDS.items()}).T
''')

md("""
## 2 · The table

Rows: benchmark × split (the split's prompts should be refused — `should refuse`, `unsafe`, `harmful`, `toxic` —
or answered — `should answer`, `safe`, `unharmful`, `benign`, `over-refusal`). `n`: prompts behind the string
judge's rates (generated prompts). Read the intervals: with a few dozen prompts per cell, differences of ten
points are often noise. The samples are **category-balanced** (an equal share per category or type), so a cell is
the unweighted mean over categories, not the benchmark's own rate over all its prompts; the reference column is
the latter.
""")

code('''
table, status = tables.build(GEN, LAB, models, benchmarks, judges, THRESHOLDS, ROOT / completions_dir)
notes = {"sorry_bench_partial": " (partial copy: 449 of 450 base prompts, categories inferred)"}
main = tables.wide(table, status, primary_judge, notes)
token_table = tables.wide(table[table["model"].isin([m for m, s in models.items() if s != "none"])], status, "token", notes)
display(Markdown(tables.markdown(main)))
''')

md("""
The same cells by the **token** judge (models with tokens only): the first token of every scored prompt. Its n
is the number of scored prompts, so its intervals are narrower; it measures the dial itself, not the text.
""")

code('''
display(Markdown(tables.markdown(token_table)))
''')

md("""
## 3 · Per category and per type

CoCoNot-style bars: the judged share of refusals (red) and compliance (blue) per CoCoNot category, for every
model without intervention, on the original prompts (should refuse) and the contrast prompts (should answer); then
XSTest by prompt type.
""")

code('''
figures = []
for bench, split, name in (("coconot_original", True, "04_coconot_original_by_category"),
                           ("coconot_contrast", False, "04_coconot_contrast_by_category"),
                           ("xstest", None, "04_xstest_by_type")):
    if status.get(bench) != "ok":
        print(f"{bench}: {status.get(bench)}")
        continue
    group = "subcategory" if bench == "xstest" else "category"
    frame = pd.concat([tables.outcomes_by_group(GEN, LAB, m, bench, primary_judge, group, s) for m, s in models.items()])
    figures.append(plots.stacked_outcomes(frame, FIG / f"{name}.png", title=f"{bench} · {primary_judge} judge · no intervention"))
frame.pivot_table(index="group", columns="model", values="refusal")
''')

md("""
## 4 · Does the text follow the token, benchmark by benchmark?

For models with tokens: the share of generated prompts on which the decided first token (refusal token vs
`[respond]`) and the text judge agree. Low agreement means the dial moves the token more than the text.
""")

code('''
agreement = (table[(table["judge"] == primary_judge) & table["token_judge_agreement"].notna()]
             .pivot_table(index=["benchmark", "split"], columns="column", values="token_judge_agreement"))
agreement
''')

md("""
## 5 · Files

`reports/benchmark_table.md` (both tables, the generation settings and the judge's quality),
`reports/benchmark_table.csv` (every cell in long format) and `reports/metrics/benchmarks.json` (every cell).
""")

code('''
card_file = ROOT / "reports" / "metrics" / "judge_card.json"
card = json.loads(card_file.read_text())["judges"] if card_file.is_file() else {}
quality = "; ".join(f"{name}: accuracy {j['overall']['accuracy']:.3f}, κ {j['overall']['cohen_kappa']:.3f} (n {j['overall']['n']})"
                    for name, j in card.items() if j["overall"]["accuracy"] is not None)
text = "\\n".join([
    "# Benchmark table", "",
    f"Refusal rate in % with Wilson 95% intervals. Generation: greedy, max_new_tokens {GENERATION['max_new_tokens']}, "
    f"{GENERATION['dtype']} on {GENERATION['device']}. Judge quality on XSTest's human labels: {quality or 'n/a'}.",
    "Thresholds (chosen on the validation split): " + "; ".join(
        f"{m}: " + ", ".join(f"{k} {v['threshold']:g}" for k, v in t.items()) for m, t in THRESHOLDS.items()) + ".",
    "Samples are category-balanced (equal share per category / type): a cell is the unweighted mean over "
    "categories, not the rate over the whole benchmark. Reference: Refuse-Llama-3-8B over the full benchmarks "
    "(judge Llama-3.3-70B), Alagharu et al., arXiv 2603.13359, Table 1 (numbers as cited in issue 5).", "",
    f"## Judge: {primary_judge} (n = generated prompts)", "", tables.markdown(main), "",
    "## Judge: token (n = scored prompts; models with tokens)", "", tables.markdown(token_table), ""])
(ROOT / "reports").mkdir(parents=True, exist_ok=True)
(ROOT / "reports" / "benchmark_table.md").write_text(text)
table.to_csv(ROOT / "reports" / "benchmark_table.csv", index=False)
metrics = {"status": status, "generation": GENERATION, "thresholds": THRESHOLDS,
           "cells": json.loads(table.to_json(orient="records"))}
(ROOT / "reports" / "metrics").mkdir(parents=True, exist_ok=True)
(ROOT / "reports" / "metrics" / "benchmarks.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\\n")
write_params(PARAMS, ROOT / "reports" / "params" / "benchmark_table.json")
plots.close(figures)
print(f"{len(table)} cells; status:", status)
''')

nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                         "language_info": {"name": "python"}})
nbformat.write(nb, "notebooks/04_benchmark_table.ipynb")
