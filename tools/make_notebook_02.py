"""Writes notebooks/02_sft.ipynb (output-free)."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip()))
code = lambda s, **kw: cells.append(new_code_cell(s.strip(), **kw))

md("""
# 02 · Refusal tokens in the model: adding them and learning them with TRL SFT

**Paper (Jain et al., 2025, §3):** add `[refuse]` / `[respond]` (or one token per category) to the vocabulary and
fine-tune. The paper does not say how the new embedding rows start. On a small CPU budget that choice decides
whether the token is learned at all, and this notebook shows it.

The training itself runs in the `train@<variant>` DVC stages (`python -m refusal_tokens.train --variant …`, the
same entry point `accelerate launch` uses on GPUs). This notebook reads what they wrote and teaches:
1. what the tokens are to the tokenizer (ids, one token with or without a leading space);
2. how the new rows' **initialisation** changes learning (p(token) and validation loss vs step);
3. the loss curves of every variant;
4. p(refusal token) on the validation split, by category, **before and after** training;
5. a few greedy generations per category;
6. the table of variants (`reports/metrics/sft.json`).

With its default `smoke=True` the notebook first trains a tiny random model on toy data itself (seconds), so the
same code runs under nbval. Every number shown then is meaningless by design.
""")

code('''
# Parameters (papermill injects params.yaml's `sft_report` section). Smoke defaults run in seconds under nbval.
out: str = "build/smoke"                 # output root; the DVC stage passes "."
smoke: bool = True                       # True: build + train tiny variants here; False: read the DVC stages' models
models_root: str = "models/smollm2-135m" # read when smoke is False: <root>/{base,init,sft}/…
variants: list = ["single_r50", "category_r50", "single_r50_meaninit", "none_r50"]
init_comparison: list = ["single_r50", "single_r50_meaninit"]  # same data and steps, different token init
single_variant: str = "single_r50"
category_variant: str = "category_r50"
generations_per_category: int = 1        # greedy generations shown per category (CPU: ≈1 s per prompt)
max_new_tokens: int = 24
''', metadata={"tags": ["parameters"]})

code('''
import json
from pathlib import Path

import pandas as pd
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from refusal_tokens import plots, scoring, smoke as smoke_setup, tagging, tokens, train
from refusal_tokens.notebook import check_parameters, project_root, write_params

PARAMS = check_parameters(globals())
PROJECT = project_root()  # paths in params files are relative to the project, not to notebooks/
ROOT = PROJECT / out
MODELS = smoke_setup.setup(ROOT) if smoke else PROJECT / models_root
runs = {name: train.load_variant(MODELS / "sft" / name) for name in variants}
pd.set_option("display.max_colwidth", 80)
print(f"{len(runs)} variants from {MODELS}")
''')

md("""
## 1 · The tokens, to the tokenizer

Each scheme token is one *added* token: encoding its string gives exactly one id, also after a space. Its id sits
after the original vocabulary. The preparation stage (`add_tokens@<scheme>-<init>`) adds the tokens and resizes
the embeddings once, in a single process, so that multi-GPU training never resizes (which DeepSpeed ZeRO-3 is
known to get wrong).
""")

code('''
rows = []
for scheme in ("single", "category"):
    init_dir = MODELS / "init" / f"{scheme}-words"
    tok = AutoTokenizer.from_pretrained(init_dir)
    for token, token_id in zip(tagging.scheme_tokens(scheme), tokens.require_tokens(tok, scheme)):
        rows.append({"scheme": scheme, "token": token, "id": token_id,
                     "encode(token)": tok.encode(token, add_special_tokens=False),
                     "encode(' ' + token)": tok.encode(" " + token, add_special_tokens=False)})
print("original vocabulary:", len(AutoTokenizer.from_pretrained(MODELS / "base")))
pd.DataFrame(rows)
''')

code('''
example = train.load_rows(PROJECT / runs[single_variant]["params"]["train_file"])[0]
tok = AutoTokenizer.from_pretrained(MODELS / "init" / "single-words")
ids = tok.apply_chat_template(example["prompt"] + example["completion"], tokenize=True, return_dict=False)
prompt_len = len(tok.apply_chat_template(example["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False))
print("completion starts with:", [tok.decode([i]) for i in ids[prompt_len:prompt_len + 6]])
''')

md("""
## 2 · How the new rows start decides whether they are learned

Two initialisations, same data, steps and learning rate:
- `mean`: transformers' default `mean_resizing`. New rows are drawn around the mean of the old embeddings, so the
  token starts with almost no probability (≈1e-9 at the first response position on SmolLM2);
- `words`: each new row starts as the mean embedding of a short description (" refuse", " respond", …). SmolLM2
  ties input and output embeddings, so the token's logit starts close to that of the words.

The curves below are measured on a fixed set of validation prompts every few steps.
""")

code('''
curves = pd.DataFrame(
    {**point, "variant": f"{name} (init {runs[name]['metrics']['init']})"}
    for name in init_comparison for point in runs[name]["log"]["curve"]
)
figures = ROOT / "reports" / "figures"
fig_init = plots.init_curves(curves, figures / "02_init_comparison.png")
curves.pivot_table(index="step", columns="variant", values=["mean_p_label", "eval_loss"])
''')

md("""
## 3 · Training loss of every variant

The loss covers the assistant turn only, starting with the scheme token. A variant with tokens has one more
token per example to predict, so its loss is not directly comparable with `none`.
""")

code('''
losses = pd.DataFrame(
    {"variant": name, "step": h["step"], "loss": h["loss"]}
    for name, run in runs.items() for h in run["log"]["log_history"] if "loss" in h
)
fig_loss = plots.loss_curves(losses, figures / "02_loss_curves.png")
losses.groupby("variant")["loss"].agg(["first", "last"])
''')

md("""
## 4 · p(refusal token) on the validation split, before and after

*Before* is the prepared model (base + initialised tokens), *after* is the trained variant, both scored with one
batched forward pass per batch (`scoring.first_token_probs`: left padding, explicit position ids, float32
softmax). A calibrated refusal token separates the red boxes (should refuse) from the blue ones (should answer)
within every category. Later notebooks turn that separation into a dial.
""")

code('''
score_frames = []
for name in (single_variant, category_variant):
    run = runs[name]
    val_rows = train.load_rows(PROJECT / run["params"]["validation_file"])
    scored = val_rows[: run["params"]["score_rows"] or None]
    init_dir = PROJECT / run["params"]["model"]
    init_model = AutoModelForCausalLM.from_pretrained(init_dir, dtype=torch.float32)
    before = train.token_report(init_model, AutoTokenizer.from_pretrained(init_dir), scored, run["metrics"]["scheme"])
    del init_model
    for label, report in (("before", before["per_row"]), ("after", run["scores"])):
        score_frames.append(pd.DataFrame(report).assign(model=label, variant=name))
scores = pd.concat(score_frames)
fig_p = plots.p_refusal_by_category(scores, figures / "02_p_refusal_by_category.png")
scores.pivot_table(index=["variant", "category", "should_refuse"], columns="model", values="p_refusal").round(3)
''')

md("""
## 5 · What the trained model says

Greedy generations from the single-token model, a few validation prompts per category. The scheme token it
chooses comes first. Notebook 03 forces that first token instead of letting the model pick it.
""")

code('''
run = runs[single_variant]
val_rows = train.load_rows(PROJECT / run["params"]["validation_file"])
picked = pd.DataFrame(val_rows).groupby(["category", "should_refuse"]).head(generations_per_category)
model = AutoModelForCausalLM.from_pretrained(MODELS / "sft" / single_variant, dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(MODELS / "sft" / single_variant)
picked = picked.assign(generation=scoring.greedy_generate(model, tok, list(picked["prompt"]), max_new_tokens))
picked.assign(prompt=picked["prompt"].map(lambda p: p[-1]["content"][:70]))[
    ["category", "should_refuse", "prompt", "generation"]]
''')

md("""
## 6 · The variants

`train_tokens` counts the non-padding tokens trained on; `tokens_per_second` is wall-clock. `first_token_accuracy`:
the argmax over the scheme's tokens equals the label. `auroc`: p(refusal) ranks refusal prompts above answer
prompts. The `none` variants have no token to read: their refusal behaviour is measured from text in notebook 04.
""")

code('''
sft = train.summary(runs)
metrics_path = ROOT / "reports" / "metrics" / "sft.json"
metrics_path.parent.mkdir(parents=True, exist_ok=True)
metrics_path.write_text(json.dumps(sft, indent=2, sort_keys=True) + "\\n")
write_params(PARAMS, ROOT / "reports" / "params" / "sft_report.json")
plots.close([fig_init, fig_loss, fig_p])
pd.DataFrame(sft).T
''')

nb = new_notebook(cells=cells, metadata={
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
})
nbformat.write(nb, "notebooks/02_sft.ipynb")
print("wrote notebooks/02_sft.ipynb")
