"""Writes notebooks/01_data_tagging.ipynb (output-free). Edit here or in Jupyter; both are fine."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip()))
code = lambda s, **kw: cells.append(new_code_cell(s.strip(), **kw))

md("""
# 01 · Data tagging: building the refusal-token training mix

**Paper (Jain et al., 2025, §3):** fine-tune on a mix of refusals and ordinary answers, and put a special token
at the start of every response — `[refuse]` before refusals, `[respond]` before everything else (or one token per
refusal *category*). At inference the probability of those tokens at the first response position becomes a dial.

This notebook builds that training data. It teaches four things:
1. where each dataset comes from and what we measured in it;
2. what one example looks like under each **token scheme** (`none`, `single`, `category`);
3. why **decontamination** against every evaluation set matters, and how much it removes;
4. how the **mix** (refusal proportion, category weights, contrast share) is put together.

The paper's refusal data is CoCoNot's SFT split, which lives only on the Hugging Face Hub. Offline we build a
CoCoNot-*style* mix from public stand-ins (see the README's *Deviations*). The same code uses the real split when
the Hub is reachable.

> **Content warning:** the refusal rows contain harmful requests, shown truncated below.
""")

code('''
# Parameters (papermill injects params.yaml's `data` section over these). Defaults are smoke-sized: nbval runs
# this notebook as-is in `make test`, so it must finish in seconds and write only under `out`.
out: str = "build/smoke"            # output root; the DVC stage passes "." (data/, data_cards/, reports/)
seed: int = 0                        # one seed for sampling, splits and template choice
size: int = 120                      # rows per mix, train + validation (params.yaml: 1,000)
val_fraction: float = 0.2            # 120 × 0.2 → 24 validation rows, stratified by category × refuse/answer
refusal_proportions: list = [0.5, 0.25, 0.75]  # one mix per value; the first is the main mix
category_weights: dict = {           # relative share of each CoCoNot category among the refusals
    "Incomplete requests": 1.0,
    "Unsupported requests": 1.0,
    "Indeterminate requests": 1.0,
    "Humanizing requests": 1.0,
    "Requests with safety concerns": 1.0,
}
contrast_share: float = 0.4          # of the answer rows: contrast prompts (look refusable, should be answered)
general_share: float = 0.6           # of the answer rows: general chat (contrast + general must sum to 1)
max_response_tokens: int = 96        # ≈ tokens (4 chars/token); longer responses are cut at a sentence end
max_prompt_tokens: int = 96          # rows with longer prompts are dropped
primary_sources: list = ["coconot_train"]  # the paper's data (Hub only)
fallback_sources: list = [           # stand-ins, used only when no primary source loads
    "safety_tuned_llamas", "harmbench_adv_safe", "falseqa", "unknownbench_nec", "situatedqa_geo",
    "situatedqa_temp", "selfaware", "self_awareness", "coconot_pref",
]
general_sources: list = ["alpaca_gpt4_demo", "lima", "self_instruct", "gpteacher"]
''', metadata={"tags": ["parameters"]})

code('''
import json
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from refusal_tokens import cards, mixing, plots, sources, tagging
from refusal_tokens.decontaminate import EvalIndex, overlap_count
from refusal_tokens.notebook import check_parameters, project_root, write_params

PARAMS = check_parameters(globals())  # unknown or mistyped parameters stop the run here (papermill only warns)
ROOT = project_root() / out
pd.set_option("display.max_colwidth", 90)
print("writing under", ROOT, "| mirror:", sources.mirror_dir() or "none (cache / download)")
''')

md("""
## 1 · The sources

Every dataset is registered in `refusal_tokens.sources` with its canonical location (a raw-file URL at a pinned
commit, or a Hub id and revision), the sha256 of every file and its licence. Files come from the offline mirror
when one is configured, else from the local cache, else they are downloaded and checked. Hub-only sets
(OR-Bench, WildGuardTest, WildJailbreak, CoCoNot's SFT split) report *not run* offline instead of a number.

Each source gets a data card in `data_cards/sources/`, with the counts measured here.
""")

code('''
spec_names = fallback_sources + primary_sources + general_sources
names = list(dict.fromkeys(spec_names + sources.names("eval") + sources.names("judge")))
loaded, status = sources.load_all(names)
# Offline, the paper's CoCoNot split is not obtainable and the stand-ins must be: stop here with one clear error.
primary_loaded = any(loaded[n] is not None for n in primary_sources)
sources.require(loaded, status, general_sources + ([] if primary_loaded else fallback_sources))
pd.DataFrame(sources.summary(loaded, status))
''')

md("""
## 2 · One example, three token schemes

The scheme token is the first thing in the assistant turn, so TRL's completion-only loss trains it. Under
`single`, all refusals share `[refuse]`; under `category`, the token names the CoCoNot category, which later lets
us move each category's refusal rate on its own. `none` is the baseline: same rows, no token.

Prompt-only refusal sources (SelfAware, SituatedQA, UnknownBench, the self-awareness questions) have no refusal
text; `tagging.write_response` picks one of four phrasings per subcategory, deterministically from the seed.
""")

code('''
pd.DataFrame(tagging.scheme_examples(tagging.demo_records({n: loaded[n] for n in spec_names}, seed)))
''')

md("""
## 3 · Decontamination

A training prompt that also appears in a benchmark would inflate that benchmark's refusal rate. Every candidate
prompt is compared with every evaluation prompt we can load: exact, normalised (case, punctuation, spacing), and
fuzzy (word-set Jaccard ≥ 0.8). The SituatedQA row is the one to watch: CoCoNot built its *underspecified*
evaluation prompts from SituatedQA's geo questions.
""")

code('''
eval_sets = {n: r for n, r in loaded.items() if r is not None and sources.get(n).role in ("eval", "judge")}
eval_missing = [n for n in names if loaded[n] is None and sources.get(n).role == "eval"]
index = EvalIndex.build(eval_sets)
specs = mixing.specs_from_params(PARAMS)
pools = mixing.build_pools(specs[0], index)  # pools depend on sources, seed and length limits, not on proportion
print(f"{len(index.sets):,} evaluation prompts from {len(eval_sets)} sets; not checked: {eval_missing or 'none'}")
print("not obtainable here:", list(pools.unavailable) or "none", "| other drops:", pools.dropped)
pd.DataFrame(pools.decontamination).T
''')

md("""
## 4 · The mixes

One mix per refusal proportion. The first is the main mix (trained with `single` and `category` tokens);
all of them are trained without tokens as the paper's "current default approach" baseline: change the share of
refusals in the data and retrain, once per setting.

Refusals are spread over the five categories by `category_weights`, round-robin over subcategories so that each
subcategory is covered. Contrast rows are capped by what exists (no contrast data for *indeterminate* and
*humanizing*), and the rest goes to the other categories.
""")

code('''
mixes = [mixing.build_mix(spec, index, pools) for spec in specs]
composition = pd.concat([pd.DataFrame(m.composition()).assign(mix=m.spec.name) for m in mixes])
figures_dir = ROOT / "reports" / "figures"
fig_mix = plots.category_mix(composition, figures_dir / "01_category_mix.png")
composition.pivot_table(index=["category", "should_refuse"], columns="mix", values="rows", aggfunc="sum", fill_value=0)
''')

md("""
## 5 · Response lengths

On a 2-core CPU every token of training costs time (≈60 tokens/s for the 135M model), so responses are cut at a
sentence end after ≈`max_response_tokens`. Template refusals are short; answers fill the budget. A model can learn
"short = refuse" from this; the scheme token is trained before any of the length shows, which is one reason the
token is a cleaner signal than the text.
""")

code('''
lengths = pd.DataFrame(
    {"response_tokens": mixing.approx_tokens(r.response), "label": "refuse" if r.should_refuse else "answer"}
    for r in mixes[0].splits["train"]
)
fig_len = plots.response_lengths(lengths, figures_dir / "01_response_lengths.png")
lengths.groupby("label")["response_tokens"].describe()
''')

md("""
## 6 · Writing the mixes, cards and metrics

Each mix is written once per scheme: `data/processed/mixes/<mix>/<scheme>/{train,validation}.jsonl`, in TRL's
conversational prompt/completion format. The final files are checked against the evaluation prompts once more;
the metrics file records that overlap, and it must be 0.
""")

code('''
mix_dir = ROOT / "data" / "processed" / "mixes"
metrics = {"mixes": {}, "eval_sets": sorted(eval_sets), "eval_sets_not_checked": eval_missing}
for mix in mixes:
    path = mixing.write_mix(mix, mix_dir)
    prompts = [row["prompt"][-1]["content"] for split in mixing.SPLITS
               for row in mixing.read_split(path / "single" / f"{split}.jsonl")]
    overlap = overlap_count(prompts, index)
    assert overlap == 0, f"{mix.spec.name}: {overlap} training prompts match evaluation prompts"
    metrics["mixes"][mix.spec.name] = mixing.mix_metrics(mix, overlap)
    card = ROOT / "data_cards" / "mixes" / f"{mix.spec.name}.md"
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text(cards.mix_card(mix, sorted(eval_sets), eval_missing, overlap))
cards.write_source_cards(loaded, status, ROOT / "data_cards" / "sources")
metrics_path = ROOT / "reports" / "metrics" / "data.json"
metrics_path.parent.mkdir(parents=True, exist_ok=True)
metrics_path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\\n")
write_params(PARAMS, ROOT / "reports" / "params" / "data.json")
plots.close([fig_mix, fig_len])
pd.DataFrame({name: {"train": m["rows"]["train"], "validation": m["rows"]["validation"],
                     "eval_overlap": m["eval_overlap"]} for name, m in metrics["mixes"].items()}).T
''')

md("""
## What to take away

- The same rows exist under three schemes, so any difference between the `none`, `single` and `category` models
  comes from the token, not the data.
- Decontamination is not optional: SituatedQA and CoCoNot share prompts, and several safety sets reuse AdvBench.
- The stand-in mix is *CoCoNot-style*, not CoCoNot: two subcategories (input/output modality, style and length)
  have no source here. The mix cards in `data_cards/mixes/` list exactly what went in.

Next: notebook 02 adds the tokens to the model and trains it.
""")

nb = new_notebook(cells=cells, metadata={
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
})
nbformat.write(nb, "notebooks/01_data_tagging.ipynb")
print("wrote notebooks/01_data_tagging.ipynb")
