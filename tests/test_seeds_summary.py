"""bench/seeds.py --summary on hand-made records: the pipeline's seed joins the bench's, and the mean and range can
be checked by eye."""

import json

from .bench_scripts import load

seeds = load("seeds")


def test_the_pipeline_seed_is_one_more_run(tmp_path):
    runs = [{"train": {"seed": s}, "test": {"e1_auroc": e1, "xstest_auroc": 0.6, "e2_gap_points": 50.0,
                                           "e2_gap_points_low": 40.0, "benign_refusal_greedy": b,
                                           "validation_auroc": 0.9}}
            for s, e1, b in ((1, 0.80, 0.10), (2, 0.90, 0.00))]
    (tmp_path / "seeds.json").write_text(json.dumps({"runs": runs}))
    (tmp_path / "evidence.json").write_text(json.dumps({
        "e1_auroc_coconot_single": 0.85, "xstest_auroc_single": 0.6, "e2_gap_points_single": 50.0,
        "e2_gap_low_points_single": 40.0, "benign_refusal_greedy_token_single": 0.05}))
    (tmp_path / "params.yaml").write_text("train:\n  common:\n    seed: 0\n")
    out = seeds.summary(tmp_path / "seeds.json", tmp_path / "evidence.json", tmp_path / "params.yaml")
    assert out["e1_auroc"]["values"] == [0.85, 0.80, 0.90]           # pipeline first, then the bench's seeds
    assert abs(out["e1_auroc"]["mean"] - 0.85) < 1e-12 and (out["e1_auroc"]["min"], out["e1_auroc"]["max"]) == (0.8, 0.9)
    assert abs(out["benign_refusal_greedy"]["mean"] - 0.05) < 1e-12
    assert out["validation_auroc"]["values"] == [None, 0.9, 0.9]    # not in the pipeline's file: left out of the mean
    assert out["validation_auroc"]["mean"] == 0.9


def test_without_a_pipeline_run_only_the_bench_seeds_count(tmp_path):
    runs = [{"train": {"seed": 1}, "test": {k: 1.0 for k in seeds.KEYS}}]
    (tmp_path / "seeds.json").write_text(json.dumps({"runs": runs}))
    out = seeds.summary(tmp_path / "seeds.json", tmp_path / "missing.json", tmp_path / "params.yaml")
    assert out["e1_auroc"]["values"] == [1.0]
