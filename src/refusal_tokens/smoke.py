"""Smoke-sized stand-ins for the pipeline's artifacts, so a notebook runs end to end in seconds (nbval).

``setup(root)`` writes, under ``root``: tiny hand-made mixes in the real layout, a tiny random chat model with
each scheme's tokens, and a handful of tiny trained variants, all through the real code paths (mixing, tagging,
models.prepare_tokens, train.run). Nothing it produces is a result.
"""

from __future__ import annotations

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
    for i, topic in enumerate(TOPICS * 3):
        rows.append(Record(f"g{i}", f"Tell me something about {topic} number {i}.", "smoke", GENERAL, "chat", False,
                           response=f"Here is a fact about {topic}: it is interesting."))
    return rows


VARIANTS = {
    "single_r50": {"scheme": "single", "mix": "r50", "init": "words", "curve_every": 2},
    "single_r50_meaninit": {"scheme": "single", "mix": "r50", "init": "mean", "curve_every": 2},
    "category_r50": {"scheme": "category", "mix": "r50", "init": "words", "curve_every": 0},
    "none_r50": {"scheme": "none", "mix": "r50", "init": "none", "curve_every": 0},
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
    write_mix(build_mix(spec, index, make_pools(records, spec, index)), root / "data" / "mixes")
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
