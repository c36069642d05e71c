"""Smoke-sized stand-ins for the pipeline's artifacts, so a notebook runs end to end in seconds (nbval).

``setup(root)`` writes, under ``root``: tiny hand-made mixes in the real layout, a tiny random chat model with
each scheme's tokens, and a handful of tiny trained variants, all through the real code paths (mixing, tagging,
models.prepare_tokens, train.run). Nothing it produces is a result.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .decontaminate import EvalIndex
from .mixing import MixSpec, build_mix, make_pools, write_mix
from .sources import COCONOT_CATEGORIES, GENERAL, Record

TOPICS = ("locks", "bread", "rivers", "music", "tax", "cats", "trains", "poems")


def toy_records() -> list[Record]:
    rows = []
    for c, category in enumerate(COCONOT_CATEGORIES):
        for i, topic in enumerate(TOPICS):
            rows.append(Record(f"r{c}-{i}", f"Question {c} of kind {category.split()[0].lower()} about {topic}?", "smoke",
                               category, "smoke", True, response=f"I can't answer that {topic} question."))
        for i, topic in enumerate(TOPICS[:3]):
            rows.append(Record(f"c{c}-{i}", f"Contrast {c} question about {topic}, please.", "smoke", category,
                               "smoke", False, response=f"Sure: here is a short answer about {topic}."))
    for i, topic in enumerate(TOPICS * 4):  # 32 general rows: the no-contrast ablation mix takes 30
        rows.append(Record(f"g{i}", f"Tell me something about {topic} number {i}.", "smoke", GENERAL, "chat", False,
                           response=f"Here is a fact about {topic}: it is interesting."))
    return rows


VARIANTS = {
    "single_r50": {"scheme": "single", "mix": "r50", "init": "words", "curve_every": 2},
    "single_r50_meaninit": {"scheme": "single", "mix": "r50", "init": "mean", "curve_every": 2},
    "category_r50": {"scheme": "category", "mix": "r50", "init": "words", "curve_every": 0},
    "none_r50": {"scheme": "none", "mix": "r50", "init": "none", "curve_every": 0},
    "single_r50_nocontrast": {"scheme": "single", "mix": "r50_nocontrast", "init": "words", "curve_every": 0},
}


def setup(root: str | Path, steps: int = 4) -> Path:
    """Build everything under ``root``; returns the models folder (``<root>/models/tiny``)."""
    from . import models, tiny, train

    root = Path(root)
    records = toy_records()
    index = EvalIndex.build({})
    spec = MixSpec(name="r50", size=60, refusal_proportion=0.5, category_weights={c: 1.0 for c in COCONOT_CATEGORIES},
                   contrast_share=0.4, general_share=0.6, max_response_tokens=64, max_prompt_tokens=64,
                   val_fraction=0.25, seed=0, primary_sources=(), fallback_sources=(), general_sources=())
    pools = make_pools(records, spec, index)
    write_mix(build_mix(spec, index, pools), root / "data" / "mixes")
    ablation = replace(spec, name="r50_nocontrast", contrast_share=0.0, general_share=1.0)
    write_mix(build_mix(ablation, index, pools), root / "data" / "mixes")
    models_root = root / "models" / "tiny"
    base = tiny.save_tiny_base(models_root / "base", [r.prompt + " " + r.response for r in records])
    for name, v in VARIANTS.items():
        init_dir = models_root / "init" / f"{v['scheme']}-{v['init']}"
        if not init_dir.exists():
            models.prepare_tokens(base, v["scheme"], v["init"], init_dir)
        mix = root / "data" / "mixes" / v["mix"] / v["scheme"]
        train.run(train.TrainConfig(
            name=name, scheme=v["scheme"], mix=v["mix"], init=v["init"], model=str(init_dir),
            train_file=str(mix / "train.jsonl"), validation_file=str(mix / "validation.jsonl"),
            output_dir=str(models_root / "sft" / name), checkpoint_dir=str(root / "checkpoints" / name),
            learning_rate=3e-3, max_steps=steps, per_device_train_batch_size=8, max_length=64,
            curve_every=v["curve_every"], save_steps=steps, eval_rows=8))
    return models_root


def toy_benchmark(source: str) -> list[dict]:
    """Toy prompts shaped like :func:`refusal_tokens.benchmarks.benchmark_rows` (Hub-only names: unreachable)."""
    from .errors import SourceUnavailable

    if source.startswith(("or_bench", "wild")):
        raise SourceUnavailable(source, "toy stand-in for a Hub-only set (smoke run)")
    rows = []
    for c, category in enumerate(COCONOT_CATEGORIES):
        for i, topic in enumerate(TOPICS[:4]):
            refuse = source not in ("coconot_contrast", "benign_instructions") and (source != "xstest" or i % 2 == 0)
            prompt = (f"Question {c} of kind {category.split()[0].lower()} about {topic}?" if refuse
                      else f"Contrast {c} question about {topic}, please.")
            cat = category if source.startswith("coconot") else ("harmful" if refuse else "benign")
            rows.append({"id": f"{source}-{c}-{i}", "benchmark": source, "prompt": prompt,
                         "conversation": [{"role": "user", "content": prompt}], "category": cat,
                         "subcategory": "toy", "should_refuse": refuse})
    return rows


def toy_judge_records() -> list[Record]:
    """XSTest-completions-shaped records with human labels, for the smoke judge card."""
    texts = [("I'm sorry, I can't help with that.", "2_full_refusal", True),
             ("Sure, here is how to bake bread.", "1_full_compliance", False),
             ("I cannot do that, but here is a safer idea.", "3_partial_refusal", True),
             ("Rivers flow to the sea.", "1_full_compliance", True),
             ("As an AI, I won't share that.", "2_full_refusal", False),
             ("Here are three facts about cats.", "1_full_compliance", False)]
    return [Record(f"xs-{i}", f"toy prompt {i}", "xstest_completions", model, "toy", unsafe, response=text,
                   meta={"human_label": label, "model": model})
            for model in ("toy_a", "toy_b") for i, (text, label, unsafe) in enumerate(texts)]


def benchmark_setup(root: str | Path) -> dict:
    """Tiny variants (:func:`setup`), their generations over toy benchmarks, labels and a judge card under
    ``root``; returns the params (shaped like params.yaml's generate/judge sections, paths relative to ``root``).
    Reuses a finished earlier run under the same root."""
    import json

    from . import benchmarks

    root = Path(root)
    params = {
        "generate": {
            "out": "data/generations", "models_root": "models/tiny", "mixes_dir": "data/mixes", "validation_mix": "r50",
            "models": {"base": {"path": "base", "scheme": "none"}, "none_r50": {"path": "sft/none_r50", "scheme": "none"},
                       "single_r50": {"path": "sft/single_r50", "scheme": "single"},
                       "category_r50": {"path": "sft/category_r50", "scheme": "category"},
                       "single_r50_nocontrast": {"path": "sft/single_r50_nocontrast", "scheme": "single",
                                                 "validation_mix": "r50_nocontrast"}},
            "benchmarks": {"coconot_original": {"score": 20, "generate": 10},
                           "coconot_contrast": {"score": 20, "generate": 10},
                           "xstest": {"score": 20, "generate": 10},
                           "advbench": {"score": 20, "generate": 10},
                           "benign_instructions": {"score": 20, "generate": 10},
                           "or_bench_hard": {"score": 8, "generate": 8, "hub_only": True}},
            "temperatures": [0.5, 1.0, 2.0], "max_new_tokens": 6, "batch_size": 8, "score_batch_size": 16, "seed": 0,
            "torch_threads": 0, "system_prompts": {"more": "Refuse more.", "less": "Refuse less."},
            "system_prompt_models": ["none_r50", "single_r50"],
            "system_prompt_benchmarks": ["coconot_original", "coconot_contrast"]},
        "judge": {"labels_dir": "data/labels", "judges": [{"name": "token"}, {"name": "string"}],
                  "card_judges": [{"name": "string"}, {"name": "llm", "backend": "hf", "path": "models/tiny/base",
                                                       "rows": 6}],
                  "card": "reports/judge_card.md", "card_metrics": "reports/metrics/judge_card.json"},
    }
    done = root / "data" / "benchmarks-smoke.json"
    if done.is_file() and json.loads(done.read_text()) == params:
        return params
    if not all((root / "models" / "tiny" / "sft" / v / "metrics.json").is_file() for v in VARIANTS):
        setup(root)
    for model in params["generate"]["models"]:
        benchmarks.generate_model(model, params, root, progress=False, loader=toy_benchmark)
    benchmarks.judge_generations(params, root)
    benchmarks.write_judge_card(params, root, records=toy_judge_records())
    diagnostics_setup(root)
    done.write_text(json.dumps(params))
    return params


def diagnostics_setup(root: str | Path) -> dict:
    """The diagnostics stage's two files, computed by the real functions on the toy mix, toy benchmarks and the
    tiny base model (layers 1 and 2 of 2)."""
    from . import diagnostics as D
    from .benchmarks import validation_rows
    from .files import read_jsonl

    root = Path(root)
    mix = root / "data" / "mixes" / "r50" / "none"
    train_rows = [{"prompt": r["prompt"][-1]["content"], "conversation": list(r["prompt"]),
                   "should_refuse": r["should_refuse"]} for r in read_jsonl(mix / "train.jsonl")]
    rows = {"mix_train": train_rows, "validation": validation_rows(mix / "validation.jsonl"),
            "coconot": toy_benchmark("coconot_original") + toy_benchmark("coconot_contrast"),
            "xstest": toy_benchmark("xstest")}
    shortcut = D.shortcut_baseline(train_rows, {k: v for k, v in rows.items() if k != "mix_train"})
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = root / "models" / "tiny" / "base"
    model, tokenizer = AutoModelForCausalLM.from_pretrained(base), AutoTokenizer.from_pretrained(base)
    features = {k: D.hidden_states(model, tokenizer, [r["conversation"] for r in v], [1, 2]) for k, v in rows.items()}
    ceiling = D.frozen_ceiling(features, {k: [r["should_refuse"] for r in v] for k, v in rows.items()}, folds=2)
    return D.write(root, shortcut, ceiling, {"layers": [1, 2], "rows": {k: len(v) for k, v in rows.items()}})["headline"]
