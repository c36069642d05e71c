"""Writes notebooks/03_calibration.ipynb (output-free)."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip()))
code = lambda s, **kw: cells.append(new_code_cell(s.strip(), **kw))

md("""
# 03 · Calibrating refusals with the refusal token: thresholds, logit bias, temperature

**Paper (Jain et al., 2025, §4):** after SFT, p([refuse]) at the first response position is a dial. The official
rule emits `[refuse]` iff p([refuse]) ≥ t and `[respond]` otherwise, forces that token, and lets the model
continue. One trained model thus gives a whole curve of refusal rates, where the usual approach ("change the share
of refusals in the data and retrain") gives one point per training run.

What this notebook reads (nothing is generated here):
- `data/generations/<model>/<benchmark>/scores.jsonl`: p(each scheme token) at T ∈ {0.5, 1, 2} and the largest
  probability of any other token, from the `generate@<model>` stages;
- `cache.jsonl`: greedy responses keyed by (prompt, forced first token), **at most two per prompt** (the refusal
  token and `[respond]`): with greedy decoding a response depends only on its first token, so every setting's
  responses are lookups, exactly;
- `data/labels/<judge>/…`: each judge's label of each cached response (`judge` stage).

Prompts: CoCoNot original (should refuse) and contrast (should answer), and the validation split of the training
mix (the only place thresholds are chosen). With the default `smoke=True` the notebook builds tiny random models
and toy benchmarks first (seconds, for nbval): every number is then meaningless by design.
""")

code('''
# Parameters (papermill injects params.yaml's `calibration` section). Smoke defaults run in seconds under nbval.
out: str = "build/smoke"                  # output root; the DVC stage passes "."
smoke: bool = True                        # True: tiny models + toy benchmarks built here; False: the stages' outputs
generations: str = "data/generations"     # generate@<model> outputs (relative to out)
labels: str = "data/labels"               # judge outputs
single_model: str = "single_r50"          # [refuse]/[respond]
category_model: str = "category_r50"      # five category tokens + [respond]
baseline_models: list = ["none_r50"]      # no tokens, trained on a refusal share: one ROC point each
prompt_baseline_models: list = ["none_r50", "single_r50"]  # told by a system prompt to refuse more / less
text_judge: str = "string"                # the judge of response text (reports/judge_card.md says how good it is)
n_thresholds: int = 21                    # thresholds 0, 0.05, …, 1 (K in the sweep-cost benchmark)
biases: list = [-6.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 6.0]  # logit bias on the refusal token(s)
temperatures: list = [0.5, 1.0, 2.0]      # first-token softmax temperatures (scored in generate)
strict_tpr: float = 0.95                  # strict: highest threshold keeping validation TPR at least this
lenient_fpr: float = 0.05                 # lenient: lowest threshold keeping validation FPR at most this
control_base: float = 0.5                 # category control: every category token's threshold
control_raised: float = 0.95              # … and the one raised at a time
''', metadata={"tags": ["parameters"]})

code('''
from refusal_tokens.notebook import check_parameters, project_root, write_params

PARAMS = check_parameters(globals())  # before other imports: unknown names are rejected, not shadowed

import json
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from refusal_tokens import benchmarks, calibration as cal, plots, smoke as smoke_setup
from refusal_tokens.control import RESPOND, Setting, threshold_grid

ROOT = project_root() / out
if smoke:
    smoke_setup.benchmark_setup(ROOT)
GEN, LAB = ROOT / generations, ROOT / labels
FIG = ROOT / "reports" / "figures"
JUDGES = [text_judge, "token"]
SCHEMES = {single_model: "single", category_model: "category"}
coconot = {m: cal.coconot_run(GEN, LAB, m, JUDGES) for m in SCHEMES}
validation = {m: benchmarks.load_run(GEN, LAB, m, "validation", JUDGES) for m in SCHEMES}
GRID = threshold_grid(n_thresholds)
pd.set_option("display.precision", 3)
print({m: len(r["prompts"]) for m, r in coconot.items()}, "CoCoNot prompts scored;",
      {m: sum(p["generate"] for p in r["prompts"]) for m, r in coconot.items()}, "generated")
''')

md("""
## 1 · What the model says at the first response position

p(refusal) is p([refuse]) for the single-token model and the sum over the five category tokens for the category
model. A useful dial needs the two kinds of prompt apart *before* any threshold is chosen: high on CoCoNot's
original prompts, low on its contrast prompts, category by category.
""")

code('''
frames = {m: cal.frame(coconot[m]["prompts"], coconot[m]["scores"], s) for m, s in SCHEMES.items()}
pd.concat({m: f.groupby(["category", "should_refuse"])["p_refusal"].mean().unstack() for m, f in frames.items()},
          axis=1).rename(columns={True: "original", False: "contrast"})
''')

md("""
## 2 · ROC: one model, every threshold, against retraining and prompting

Each curve is the threshold sweep of one model (TPR = refusal rate on CoCoNot original, FPR = on contrast, from
the tokens). The points are what you get *without* a dial:
- the same models' greedy choice (no intervention);
- the proportion baselines: models without tokens trained on a mix with a given refusal share (one training run
  per point), judged from their text;
- the system-prompt baseline: the same model told to refuse more or less (no-token models judged from text; the
  token model from its token).
Points from text are judged on the generated subset (fewer prompts, wider intervals) by the `text_judge`; so that
token models and baselines are compared like for like, each token model's sweep is drawn a second time, judged from
its text on the same subset (every threshold's responses are cache lookups).
""")

code('''
curves, points, aurocs = [], [], {}
for m, s in SCHEMES.items():
    r = cal.roc_points(frames[m])
    aurocs[m] = r["auroc"]
    curves.append(pd.DataFrame({"model": f"{m} (AUROC {r['auroc']:.2f})", "fpr": r["fpr"], "tpr": r["tpr"]}))
    chosen = cal.decisions(coconot[m]["prompts"], coconot[m]["scores"], s, Setting("argmax"))
    tpr, fpr = cal.tpr_fpr([c != RESPOND for c in chosen], [p["should_refuse"] for p in coconot[m]["prompts"]])
    points.append({"label": f"{m}: greedy token", "tpr": tpr, "fpr": fpr, "judge": "token"})
    gen = [p for p in coconot[m]["prompts"] if p["generate"]]  # the prefix the system-prompt points use
    chosen = cal.decisions(gen, coconot[m]["scores"], s, Setting("argmax"))
    tpr, fpr = cal.tpr_fpr([c != RESPOND for c in chosen], [p["should_refuse"] for p in gen])
    points.append({"label": f"{m}: greedy token, {len(gen)} generated", "tpr": tpr, "fpr": fpr, "judge": "token"})
    # The same sweep judged from the text of the generated prompts (cache lookups): like-for-like with the
    # baselines' points below, which can only be judged from text.
    text_sweep = [cal.judged_rates(coconot[m], s, Setting("t", "threshold", t), text_judge).set_index("should_refuse")["rate"]
                  for t in GRID]
    n_gen = sum(p["generate"] for p in coconot[m]["prompts"])
    curves.append(pd.DataFrame({"model": f"{m}, {text_judge} judge on {n_gen} generated",
                                "fpr": [r[False] for r in text_sweep], "tpr": [r[True] for r in text_sweep]}))
for m in baseline_models:
    rates = cal.judged_rates(cal.coconot_run(GEN, LAB, m, JUDGES), "none", None, text_judge)
    by = rates.set_index("should_refuse")["rate"]
    points.append({"label": f"{m}: retrained on a refusal share", "tpr": by[True], "fpr": by[False], "judge": text_judge})
for m in prompt_baseline_models:
    for variant in (".sys-more", ".sys-less"):
        run = cal.coconot_run(GEN, LAB, m, JUDGES, variant)
        if m in SCHEMES:  # scored on the generated prefix only
            scored = [p for p in run["prompts"] if p["id"] in run["scores"]]
            chosen = cal.decisions(scored, run["scores"], SCHEMES[m], Setting("argmax"))
            tpr, fpr = cal.tpr_fpr([c != RESPOND for c in chosen], [p["should_refuse"] for p in scored])
            judge = "token"
        else:
            by = cal.judged_rates(run, "none", None, text_judge).set_index("should_refuse")["rate"]
            tpr, fpr, judge = by[True], by[False], text_judge
        points.append({"label": f"{m}: system prompt '{variant[5:]}'", "tpr": tpr, "fpr": fpr, "judge": judge})
points = pd.DataFrame(points)
fig_roc = plots.roc(pd.concat(curves), points, FIG / "03_roc.png")
points
''')

md("""
## 3 · Choosing a threshold: F1 on the validation split

F1 treats refusal as the positive class. The threshold is chosen on the **validation split of the training mix**,
never on a benchmark, and then applied unchanged to CoCoNot (and, in notebook 04, to every benchmark). Two more
operating points come from the same curve: *strict* (refuse more: the highest threshold that keeps validation TPR ≥
`strict_tpr`) and *lenient* (answer more: the lowest threshold that keeps validation FPR ≤ `lenient_fpr`).
""")

code('''
f1_rows, chosen_thresholds, f1_on_coconot = [], {}, {}
for m, s in SCHEMES.items():
    val = cal.frame(validation[m]["prompts"], validation[m]["scores"], s)
    chosen_thresholds[m] = cal.choose_thresholds(val, GRID, strict_tpr, lenient_fpr)
    for split, df in (("validation", val), ("CoCoNot", frames[m])):
        f1_rows.append(cal.f1_curve(df, GRID).assign(model=m, split=split))
    default = cal.decisions(coconot[m]["prompts"], coconot[m]["scores"], s, Setting("argmax"))
    gold = [p["should_refuse"] for p in coconot[m]["prompts"]]
    best_t = chosen_thresholds[m]["best_f1"]["threshold"]
    f1_on_coconot[m] = {"default_rule": benchmarks.f1_score([c != RESPOND for c in default], gold),
                        "validation_best_threshold": best_t,
                        "at_validation_best": benchmarks.f1_score((frames[m]["p_refusal"] >= best_t).tolist(), gold),
                        "oracle_best_on_coconot": float(cal.f1_curve(frames[m], GRID)["f1"].max())}
f1_frame = pd.concat(f1_rows)
fig_f1 = plots.metric_vs(f1_frame, "threshold", "f1", hue="model", col="split", path=FIG / "03_f1_vs_threshold.png",
                         ylabel="F1 (refusal = positive)")
display(pd.DataFrame(chosen_thresholds).T)
pd.DataFrame(f1_on_coconot).T
''')

md("""
## 4 · Refusal rate vs threshold, per category

The single-token model's token refusal rate on CoCoNot per category: original prompts (left; should refuse) and
contrast prompts (right; should answer). A category whose two curves coincide is one the token has not learned to
separate; the gap between them is what the dial can buy.
""")

code('''
sweep_settings = [Setting(f"t={t:g}", "threshold", t) for t in GRID]
by_category = cal.token_rates(coconot[single_model]["prompts"], coconot[single_model]["scores"], "single", sweep_settings)
by_category["split"] = by_category["should_refuse"].map({True: "original (refuse)", False: "contrast (answer)"})
fig_cat = plots.metric_vs(by_category, "threshold", "rate", hue="group", col="split",
                          path=FIG / "03_rate_vs_threshold_by_category.png", ylabel="token refusal rate")
by_category.pivot_table(index="threshold", columns=["split", "group"], values="rate").iloc[::4]
''')

md("""
## 5 · Logit bias

Instead of a threshold, add b to the refusal token logits before the softmax and keep the greedy choice. The biased
probabilities follow exactly from the stored ones (`control.biased`), so no forward pass is repeated. Bias and
threshold are two views of the same dial (for the single-token model, at T = 1, bias b equals the threshold
t = 1 / (1 + e^b) on p([refuse]) relative to p([respond])).
""")

code('''
bias_settings = [Setting(f"b={b:+g}", bias=b) for b in biases]
bias_rows = []
for m, s in SCHEMES.items():
    r = cal.token_rates(coconot[m]["prompts"], coconot[m]["scores"], s, bias_settings, by=None)
    bias_rows.append(r.assign(model=m))
bias_frame = pd.concat(bias_rows)
bias_frame["split"] = bias_frame["should_refuse"].map({True: "original (refuse)", False: "contrast (answer)"})
fig_bias = plots.metric_vs(bias_frame, "bias", "rate", hue="model", col="split", path=FIG / "03_logit_bias.png",
                           ylabel="token refusal rate", xlabel="logit bias on the refusal token(s)")
bias_frame.pivot_table(index="bias", columns=["model", "split"], values="rate")
''')

md("""
## 6 · Temperature

A temperature T rescales the first-token logits before the softmax (p ∝ exp(logit / T)); the greedy choice does
not change, but every threshold moves. The official category script always thresholded T = 2 probabilities; here T is
a setting. At T > 1 the probabilities flatten, so a fixed threshold refuses at a different rate.
""")

code('''
temp_rows = []
for T in temperatures:
    settings = [Setting(f"t={t:g}", "threshold", t, temperature=T) for t in GRID]
    r = cal.token_rates(coconot[single_model]["prompts"], coconot[single_model]["scores"], "single", settings, by=None)
    temp_rows.append(r.assign(T=f"T={T:g}"))
temp_frame = pd.concat(temp_rows)
temp_frame["split"] = temp_frame["should_refuse"].map({True: "original (refuse)", False: "contrast (answer)"})
fig_temp = plots.metric_vs(temp_frame, "threshold", "rate", hue="T", col="split", path=FIG / "03_temperature.png",
                           ylabel="token refusal rate")
temp_frame.pivot_table(index="threshold", columns=["T", "split"], values="rate").iloc[::4]
''')

md("""
## 7 · Category control: one dial per category

The category model has one token per CoCoNot category. The rule: find the most likely category token c*, refuse
iff p(refusal) ≥ t(c*). Raising one category's threshold should lower refusals in *that* category and leave the
others alone. Rows: the category whose threshold was raised; columns: the change in every category's token refusal
rate on CoCoNot original and contrast prompts. A clean dial is a diagonal. Off-diagonal entries appear where the
model's most likely category token is not the prompt's category.
""")

code('''
matrix = cal.category_control_matrix(coconot[category_model]["prompts"], coconot[category_model]["scores"],
                                     control_base, control_raised)
top_category = cal.top_category_agreement(coconot[category_model]["prompts"], coconot[category_model]["scores"])
fig_matrix = plots.control_matrix(matrix, FIG / "03_category_control.png",
                                  title=f"threshold {control_base} → {control_raised}, one category at a time")
print(f"most likely category token = the prompt's category on {top_category:.1%} of original prompts")
matrix
''')

md("""
## 8 · Does the text follow the token?

The dial is only useful if forcing `[refuse]` yields a refusal and forcing `[respond]` yields an answer. For the
prompts with cached responses: the judged refusal rate (by the text judge) after each forced token. The token is
learned in 20 steps; how much of the refusal *text* follows it is what this checks.
""")

code('''
consistency_rows, consistency = [], {}
for m, s in SCHEMES.items():
    c = cal.consistency(coconot[m], text_judge)
    consistency[m] = {k: v["rate"] for k, v in c.items()}
    for forced, r in c.items():
        consistency_rows.append({"model": m, "forced": forced, **r})
consistency_frame = pd.DataFrame(consistency_rows)
fig_consistency = plots.rates_with_ci(consistency_frame, x="forced", hue="model", path=FIG / "03_token_text_consistency.png",
                                      xlabel="forced first token", ylabel=f"judged refusal rate ({text_judge})")
consistency_frame
''')

md("""
## 9 · The exact sweep: every threshold's responses by lookup

A K-threshold sweep done naively generates K responses per prompt (what the official code does). Here each prompt
has at most two cached responses, so the judged refusal rate at *every* threshold is a lookup. The table compares
the token rate with the judged rate along the sweep: the gap is the token/text inconsistency of section 8, weighted
by how many prompts each threshold sends each way. `bench/sweep_cost.py` times both ways side by side.
""")

code('''
run = coconot[single_model]
gen = [p for p in run["prompts"] if p["generate"]]
token_sweep = cal.token_rates(gen, run["scores"], "single", sweep_settings, by=None)
judged_sweep = pd.concat(cal.judged_rates(run, "single", st, text_judge).assign(threshold=st.threshold)
                         for st in sweep_settings)
sweep = (token_sweep[["threshold", "should_refuse", "rate"]].rename(columns={"rate": "token rate"})
         .merge(judged_sweep[["threshold", "should_refuse", "rate"]].rename(columns={"rate": "judged rate"}))
         .assign(split=lambda d: d["should_refuse"].map({True: "original", False: "contrast"})))
generations_used = len(run["cache"])
print(f"{len(gen)} prompts × {n_thresholds} thresholds: naive = {len(gen) * n_thresholds} generations, "
      f"cached = {generations_used} ({generations_used / len(gen):.1f} per prompt)")
sweep.pivot_table(index="threshold", columns="split", values=["token rate", "judged rate"]).iloc[::4]
''')

md("""
## 10 · How good is the judge?

Every judged number above depends on the judge. The judge card measures each runnable judge against XSTest's
human labels (5 models × 450 completions; full or partial refusal = refusal). Read the κ before trusting a judged
rate.
""")

code('''
card = json.loads((ROOT / "reports" / "metrics" / "judge_card.json").read_text())
display(Markdown((ROOT / "reports" / "judge_card.md").read_text()))
''')

md("""
## 11 · The numbers (`reports/metrics/calibration.json`)
""")

code('''
sweep_range = {}  # interior thresholds only: t = 0 refuses everything and t = 1 nothing, for any model
interior = [st for st in sweep_settings if 0 < st.threshold < 1]
for m, s in SCHEMES.items():
    r = cal.token_rates(coconot[m]["prompts"], coconot[m]["scores"], s, interior, by=None)
    sweep_range[m] = {("original" if y else "contrast"): {"min": float(part["rate"].min()), "max": float(part["rate"].max())}
                      for y, part in r.groupby("should_refuse")}
metrics = {
    "auroc_coconot": aurocs,
    "auroc_validation": {m: cal.roc_points(cal.frame(validation[m]["prompts"], validation[m]["scores"], s))["auroc"]
                         for m, s in SCHEMES.items()},
    "f1_coconot": f1_on_coconot, "thresholds": chosen_thresholds, "refusal_rate_range_over_interior_sweep": sweep_range,
    "roc_points": points.to_dict(orient="records"),
    "category_control_matrix": {"base": control_base, "raised": control_raised, "delta": matrix.to_dict(orient="index"),
                                "top_category_agreement": top_category},
    "consistency": consistency, "consistency_judge": text_judge,
    "exact_sweep": {"prompts": len(gen), "thresholds": n_thresholds, "naive_generations": len(gen) * n_thresholds,
                    "cached_generations": generations_used},
    "judge_card": {name: {k: j["overall"][k] for k in ("n", "accuracy", "precision", "recall", "cohen_kappa")}
                   for name, j in card["judges"].items()},
    "prompts": {"coconot_scored": {m: len(r["prompts"]) for m, r in coconot.items()},
                "validation_scored": {m: len(r["prompts"]) for m, r in validation.items()}},
}
(ROOT / "reports" / "metrics").mkdir(parents=True, exist_ok=True)
(ROOT / "reports" / "metrics" / "calibration.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\\n")
write_params(PARAMS, ROOT / "reports" / "params" / "calibration.json")
# `dvc plots show` inputs: F1 vs threshold (one column per scheme × split) and the ROC points.
(ROOT / "reports" / "plots").mkdir(parents=True, exist_ok=True)
f1_wide = f1_frame.assign(series=f1_frame["model"].map(SCHEMES) + "_" + f1_frame["split"].str.lower())
f1_wide.pivot_table(index="threshold", columns="series", values="f1").reset_index().to_csv(
    ROOT / "reports" / "plots" / "threshold_sweep.csv", index=False, float_format="%.6g")
pd.concat(curves).to_csv(ROOT / "reports" / "plots" / "roc.csv", index=False, float_format="%.6g")
plots.close([fig_roc, fig_f1, fig_cat, fig_bias, fig_temp, fig_matrix, fig_consistency])
pd.DataFrame({"AUROC (CoCoNot)": aurocs, "F1 default": {m: v["default_rule"] for m, v in f1_on_coconot.items()},
              "F1 at validation-best t": {m: v["at_validation_best"] for m, v in f1_on_coconot.items()}})
''')

nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                         "language_info": {"name": "python"}})
nbformat.write(nb, "notebooks/03_calibration.ipynb")
