"""bench/seeds.py --summary on hand-made records: the pipeline's seed joins the bench's, and the mean and range can
be checked by eye."""

import json

from .bench_scripts import load

seeds = load("seeds")
PARAMS = """data:
  refusal_proportions: [0.1, 0.75]
train:
  common: {seed: 0, max_steps: 300, freeze_layers: 15, learning_rate: 2.0e-4, lr_scheduler_type: cosine,
           warmup_ratio: 0.1, per_device_train_batch_size: 8, max_length: 192}
"""
TRAIN = {"freeze_layers": 15, "learning_rate": 0.0002, "lr_scheduler_type": "cosine", "warmup_ratio": 0.1,
         "per_device_train_batch_size": 8, "max_length": 192}


def run(seed, test, **setting):
    """A record as bench/seeds.py writes it, of params.yaml's setting unless ``setting`` changes it."""
    train = {**TRAIN, **{k: v for k, v in setting.items() if k in TRAIN}, "seed": seed}
    return {"share": setting.get("share", 0.1), "steps": setting.get("steps", 300), "train": train, "test": test}


def test_the_pipeline_seed_is_one_more_run(tmp_path):
    runs = [run(s, {"e1_auroc": e1, "xstest_auroc": 0.6, "e2_gap_points": 50.0, "e2_gap_points_low": 40.0,
                    "benign_refusal_greedy": b, "validation_auroc": 0.9})
            for s, e1, b in ((1, 0.80, 0.10), (2, 0.90, 0.00))]
    (tmp_path / "seeds.json").write_text(json.dumps({"runs": runs}))
    (tmp_path / "evidence.json").write_text(json.dumps({
        "e1_auroc_coconot_single": 0.85, "xstest_auroc_single": 0.6, "e2_gap_points_single": 50.0,
        "e2_gap_low_points_single": 40.0, "benign_refusal_greedy_token_single": 0.05}))
    (tmp_path / "params.yaml").write_text(PARAMS)
    out = seeds.summary(tmp_path / "seeds.json", tmp_path / "evidence.json", tmp_path / "params.yaml")
    assert out["e1_auroc"]["values"] == [0.85, 0.80, 0.90]           # pipeline first, then the bench's seeds
    assert abs(out["e1_auroc"]["mean"] - 0.85) < 1e-12 and (out["e1_auroc"]["min"], out["e1_auroc"]["max"]) == (0.8, 0.9)
    assert abs(out["benign_refusal_greedy"]["mean"] - 0.05) < 1e-12
    assert out["validation_auroc"]["values"] == [None, 0.9, 0.9]    # not in the pipeline's file: left out of the mean
    assert out["validation_auroc"]["mean"] == 0.9


def test_without_a_pipeline_run_only_the_bench_seeds_count(tmp_path):
    runs = [run(1, {k: 1.0 for k in seeds.KEYS})]
    (tmp_path / "seeds.json").write_text(json.dumps({"runs": runs}))
    (tmp_path / "params.yaml").write_text(PARAMS)
    out = seeds.summary(tmp_path / "seeds.json", tmp_path / "missing.json", tmp_path / "params.yaml")
    assert out["e1_auroc"]["values"] == [1.0]


def test_runs_of_an_earlier_setting_are_left_out(tmp_path, capsys):
    # seeds of the share-0.33 constant-rate setting stay in the file; only the cosine share-0.10 run counts
    runs = [run(1, {k: 0.0 for k in seeds.KEYS}, share=0.33, lr_scheduler_type="constant", warmup_ratio=0.0),
            run(2, {k: 1.0 for k in seeds.KEYS}, steps=180),
            run(3, {k: 0.5 for k in seeds.KEYS})]
    (tmp_path / "seeds.json").write_text(json.dumps({"runs": runs}))
    (tmp_path / "params.yaml").write_text(PARAMS)
    out = seeds.summary(tmp_path / "seeds.json", tmp_path / "missing.json", tmp_path / "params.yaml")
    assert out["e1_auroc"]["values"] == [0.5]
    assert "left out: 2 recorded run(s)" in capsys.readouterr().out
