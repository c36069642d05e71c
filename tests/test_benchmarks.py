"""Benchmark sampling, statistics, calibration analyses, the table and the report helpers; the smoke pipeline's
determinism and the generate stage's bad-input errors."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from refusal_tokens import benchmarks as B, calibration as C, report as R, smoke, tables as T
from refusal_tokens.control import Setting
from refusal_tokens.errors import DataError
from refusal_tokens.tagging import CATEGORY_TOKENS, RESPOND

SAFETY, INCOMPLETE, HUMANIZING = "Requests with safety concerns", "Incomplete requests", "Humanizing requests"


def test_wilson_interval_by_hand():
    assert B.wilson(0, 0) == (0.0, 1.0)
    lo, hi = B.wilson(5, 10)  # textbook value: 0.2366 – 0.7634
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = B.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)


def test_rate_ignores_unlabelled():
    r = B.rate([True, False, None, True])
    assert (r["refusals"], r["n"], r["unlabelled"], r["rate"]) == (2, 3, 1, pytest.approx(2 / 3))


def test_f1_by_hand():
    # tp 1, fp 1, fn 1 → 2 / (2 + 1 + 1) = 0.5
    assert B.f1_score([True, True, False, False], [True, False, True, False]) == 0.5
    assert B.f1_score([False, False], [True, False]) == 0.0


def test_stratified_prefixes_are_balanced_and_seeded():
    rows = [{"id": f"{c}{i}", "category": c, "should_refuse": c != "z"} for c in "abz" for i in range(10)]
    first = B.stratified(rows, 6, seed=0)
    assert sorted(r["category"] for r in first[:3]) == ["a", "b", "z"]  # one per group before any repeats
    assert sorted(r["category"] for r in first) == ["a", "a", "b", "b", "z", "z"]
    assert B.stratified(rows, 6, seed=0) == first and B.stratified(rows, 6, seed=1) != first
    assert len(B.stratified(rows, 100, seed=0)) == 30


def test_split_names():
    assert B.split_name("xstest", True) == "unsafe" and B.split_name("xstest", False) == "safe"
    assert B.split_name("advbench", True) == "harmful"
    assert B.REFERENCE[("xstest", "safe")] == 28.00


def frame(p_refuse: list[float], p_answer: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"p_refusal": p_refuse + p_answer,
                         "should_refuse": [True] * len(p_refuse) + [False] * len(p_answer)})


def test_f1_curve_and_threshold_choice_by_hand():
    df = frame([0.9, 0.8, 0.4], [0.6, 0.2, 0.1])
    curve = C.f1_curve(df, [0.0, 0.5, 0.7, 1.0]).set_index("threshold")
    # t=0.5: predicted refusals 0.9, 0.8, 0.6 → tp 2, fp 1, fn 1 → F1 2·2/(4+1+1) = 2/3; TPR 2/3, FPR 1/3
    assert curve.loc[0.5, "f1"] == pytest.approx(2 / 3) and curve.loc[0.5, "fpr"] == pytest.approx(1 / 3)
    # t=0.7: tp 2, fp 0, fn 1 → 0.8
    assert curve.loc[0.7, "f1"] == pytest.approx(0.8)
    chosen = C.choose_thresholds(df, [0.0, 0.5, 0.7, 1.0], strict_tpr=0.95, lenient_fpr=0.0)
    assert chosen["best_f1"]["threshold"] == 0.7
    assert chosen["strict"]["threshold"] == 0.0  # only t=0 keeps TPR at 1
    assert chosen["lenient"]["threshold"] == 0.7  # lowest t with FPR 0
    with pytest.raises(DataError):
        C.tpr_fpr([True], [True])


def category_scores(probs: dict[str, float], respond: float) -> dict:
    p = dict.fromkeys(CATEGORY_TOKENS.values(), 0.0) | {CATEGORY_TOKENS[k]: v for k, v in probs.items()}
    return {"p": {"1": p | {RESPOND: respond}}, "p_other": {"1": 0.0}}


def test_category_control_matrix_is_diagonal_on_clean_scores():
    prompts = [{"id": "s", "category": SAFETY, "should_refuse": True},
               {"id": "i", "category": INCOMPLETE, "should_refuse": True}]
    scores = {"s": category_scores({SAFETY: 0.7}, 0.3), "i": category_scores({INCOMPLETE: 0.6}, 0.4)}
    m = C.category_control_matrix(prompts, scores, base=0.5, raised=0.9)
    assert m.loc[SAFETY, f"{SAFETY} (orig)"] == -1.0 and m.loc[SAFETY, f"{INCOMPLETE} (orig)"] == 0.0
    assert m.loc[INCOMPLETE, f"{INCOMPLETE} (orig)"] == -1.0 and m.loc[INCOMPLETE, f"{SAFETY} (orig)"] == 0.0
    assert C.top_category_agreement(prompts, scores) == 1.0


def test_control_steps_are_the_lowest_threshold_that_moves_the_own_category_enough():
    # two safety prompts at p(refusal) 0.6 and 0.8, one incomplete prompt at 0.7; base threshold 0.5: all refused
    prompts = [{"id": "s1", "category": SAFETY, "should_refuse": True},
               {"id": "s2", "category": SAFETY, "should_refuse": True},
               {"id": "i", "category": INCOMPLETE, "should_refuse": True}]
    scores = {"s1": category_scores({SAFETY: 0.6}, 0.4), "s2": category_scores({SAFETY: 0.8}, 0.2),
              "i": category_scores({INCOMPLETE: 0.7}, 0.3)}
    steps = C.control_steps(prompts, scores, base=0.5, ceiling=0.9, thresholds=[0.5, 0.6, 0.65, 0.75, 0.85, 0.9],
                            own_move=0.5)
    # safety: t = 0.6 still refuses both (p ≥ t); 0.65 answers s1 → 1.0 → 0.5, a 50-point move
    assert steps[SAFETY] == {"threshold": 0.65, "validation_move": 0.5, "reached": True, "n": 2}
    assert steps[INCOMPLETE]["threshold"] == 0.75 and steps[INCOMPLETE]["validation_move"] == 1.0
    # a category without validation prompts gets the ceiling, flagged
    assert steps[HUMANIZING] == {"threshold": 0.9, "validation_move": None, "reached": False, "n": 0}
    # the per-category steps feed the matrix: safety raised to 0.65 moves safety by −50 points only
    m = C.category_control_matrix(prompts, scores, base=0.5, raised={k: v["threshold"] for k, v in steps.items()})
    assert m.loc[SAFETY, f"{SAFETY} (orig)"] == -0.5 and m.loc[SAFETY, f"{INCOMPLETE} (orig)"] == 0.0


def test_token_rates_by_setting():
    prompts = [{"id": str(i), "category": "c", "should_refuse": i < 2} for i in range(4)]
    scores = {str(i): {"p": {"1": {"[refuse]": p, RESPOND: 1 - p}}, "p_other": {"1": 0.0}}
              for i, p in enumerate([0.9, 0.4, 0.3, 0.1])}
    r = C.token_rates(prompts, scores, "single", [Setting("t", "threshold", 0.35)], by=None).set_index("should_refuse")
    assert r.loc[True, "rate"] == 1.0 and r.loc[False, "rate"] == 0.0
    r = C.token_rates(prompts, scores, "single", [Setting("argmax")], by=None).set_index("should_refuse")
    assert r.loc[True, "rate"] == 0.5


def test_wide_table_says_not_run_never_a_number():
    long = pd.DataFrame([{"benchmark": "xstest", "split": "unsafe", "column": "m", "judge": "string", "rate": 0.5,
                          "ci_low": 0.2, "ci_high": 0.8, "n": 10}])
    wide = T.wide(long, {"xstest": "ok", "or_bench_hard": "not run: or_bench_hard: Hub-only set … unreachable"}, "string")
    row = wide.set_index("benchmark").loc["or_bench_hard"]
    assert row["m"] == "not run: Hub unreachable" and "23.88" in row["reference (Refuse-Llama-3-8B)"]
    assert wide.set_index("benchmark").loc["xstest", "m"] == "50.0 [20–80]"
    assert T.model_settings("none", None)[0].name == T.DEFAULT
    with pytest.raises(DataError, match="calibrated thresholds"):
        T.model_settings("single", None)


def test_report_helpers(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages:\n  s:\n    cmd: x\n    outs:\n    - path: a/b\n      md5: 0123456789abcdef\n")
    assert R.lock_hashes(lock) == [{"stage": "s", "output": "a/b", "md5": "0123456789ab"}]
    with pytest.raises(DataError):
        R.lock_hashes(tmp_path / "missing.lock")


def test_generate_rejects_bad_input_and_writes_nothing(tmp_path):
    params = {"generate": {"out": "gen", "models_root": "models", "models": {"m": {"path": "m", "scheme": "single"}}}}
    with pytest.raises(DataError, match="unknown model 'x'"):
        B.generate_model("x", params, tmp_path)
    with pytest.raises(DataError, match="holds no model"):
        B.generate_model("m", params, tmp_path)
    assert not (tmp_path / "gen").exists()


def test_generate_refuses_a_model_without_its_scheme_tokens(tmp_path):
    from refusal_tokens import tiny

    tiny.save_tiny_base(tmp_path / "models" / "m", ["a tiny corpus of words"] * 3)
    params = {"generate": {"out": "gen", "models_root": "models", "models": {"m": {"path": "m", "scheme": "single"}},
                           "temperatures": [1.0], "batch_size": 2}}
    with pytest.raises(DataError, match="lacks the 'single' scheme tokens"):  # checked before any data is read
        B.generate_model("m", params, tmp_path)
    assert not (tmp_path / "gen").exists()


@pytest.mark.parametrize("key, value", [("batch_size", 2.5), ("max_tokens", True), ("share_prefill", "no"),
                                        ("device", "tpu")])
def test_generate_rejects_bad_batching_params_at_the_door(key, value):
    """generate.batch_size / max_tokens / share_prefill / device are checked by the schema as written (no silent
    int() or bool()), before the stage reads or writes anything (tests/test_config.py runs the stage itself)."""
    import yaml

    from refusal_tokens import config

    section = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["generate"]
    with pytest.raises(DataError, match=rf"generate\.{key}: (Input should be|expected a number)"):
        config.check_section("generate", {**section, key: value})


def run_smoke_pipeline(root: Path) -> dict[str, bytes]:
    """Tiny models → generations → labels → judge card → notebooks 03 and 04; returns every metrics/data file."""
    import yaml

    from refusal_tokens import notebook

    smoke.benchmark_setup(root)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"calibration": {"out": str(root), "smoke": True},
                                      "benchmark_table": {"out": str(root), "smoke": True}}))
    project = notebook.project_root()
    cwd = Path.cwd()
    try:
        import os

        os.chdir(project)
        for nb, section in (("03_calibration", "calibration"), ("04_benchmark_table", "benchmark_table")):
            notebook.run(nb, section, params_file=str(params), out_dir=str(root / "executed"))
    finally:
        os.chdir(cwd)
    files = [*sorted((root / "reports" / "metrics").glob("*.json")), *sorted((root / "data").rglob("*.jsonl"))]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_smoke_pipeline_twice_gives_identical_metrics(tmp_path):
    first, second = run_smoke_pipeline(tmp_path / "a"), run_smoke_pipeline(tmp_path / "b")
    assert {"reports/metrics/calibration.json", "reports/metrics/benchmarks.json",
            "reports/metrics/judge_card.json"} <= set(first)
    assert first.keys() == second.keys()
    different = [name for name in first if first[name] != second[name]]
    assert not different, different
    cells = json.loads(first["reports/metrics/benchmarks.json"])
    assert cells["status"]["or_bench_hard"].startswith("not run")


def test_threshold_choice_when_no_threshold_meets_the_target():
    df = frame([0.6, 0.4], [0.5, 0.3])
    chosen = C.choose_thresholds(df, [0.5, 1.0], strict_tpr=1.0, lenient_fpr=0.0)
    assert chosen["strict"]["threshold"] == 0.5  # no t keeps TPR 1: the lowest threshold on the grid
    assert chosen["lenient"]["threshold"] == 1.0  # FPR 0 only at t=1


def test_cells_count_token_and_judge_rates_and_agreement_by_hand():
    run = {"prompts": [{"id": "a", "prompt": "x", "category": "c", "should_refuse": True, "generate": True},
                       {"id": "b", "prompt": "y", "category": "c", "should_refuse": True, "generate": True},
                       {"id": "c", "prompt": "z", "category": "c", "should_refuse": True, "generate": False}],
           "scores": {i: {"p": {"1": {"[refuse]": p, RESPOND: 1 - p}}, "p_other": {"1": 0.0}}
                      for i, p in (("a", 0.9), ("b", 0.2), ("c", 0.8))},
           "cache": {("a", "[refuse]"): "No.", ("a", RESPOND): "Sure", ("b", "[refuse]"): "No.", ("b", RESPOND): "Sure"},
           "labels": {"string": {("a", "[refuse]"): True, ("a", RESPOND): False, ("b", "[refuse]"): True,
                                 ("b", RESPOND): True},
                      "token": {("a", "[refuse]"): True, ("a", RESPOND): False, ("b", "[refuse]"): True,
                                ("b", RESPOND): False}}}
    rows = {r["judge"]: r for r in T.cells("advbench", "m", "single", run, Setting("default"), ["string", "token"])}
    # greedy: a → [refuse], b → [respond], c → [refuse]; token rate over the 3 scored = 2/3
    assert rows["token"]["n"] == 3 and rows["token"]["rate"] == pytest.approx(2 / 3)
    # string over the 2 generated: a refused, b's [respond] text judged a refusal → 2/2; agreement a yes, b no → 0.5
    assert rows["string"]["n"] == 2 and rows["string"]["rate"] == 1.0
    assert rows["string"]["token_judge_agreement"] == 0.5 and rows["string"]["reference_pct"] == 94.23
    with pytest.raises(DataError, match="no cached response"):
        T.completions({**run, "cache": {}}, "single", Setting("default"), ["string"])
    with pytest.raises(DataError, match="share prompt ids"):
        C.combine([run, run])


def test_generate_fails_cleanly_midway(tmp_path):
    """A failure after work has started (here: a benchmark loader error) leaves no output folder behind."""
    from refusal_tokens import models, tiny

    base = tiny.save_tiny_base(tmp_path / "base", ["a tiny corpus of words about cats"] * 3)
    models.prepare_tokens(base, "single", "words", tmp_path / "models" / "m")
    params = {"generate": {"out": "gen", "models_root": "models", "mixes_dir": "mixes", "validation_mix": "r50",
                           "models": {"m": {"path": "m", "scheme": "single"}}, "temperatures": [1.0],
                           "batch_size": 2, "score_batch_size": 2, "max_new_tokens": 2, "seed": 0,
                           "benchmarks": {"coconot_original": {"score": 2, "generate": 1}, "xstest": {"score": 2, "generate": 1}}}}
    with pytest.raises(DataError, match="validation split"):
        B.generate_model("m", params, tmp_path)
    mix = tmp_path / "mixes" / "r50" / "single"
    mix.mkdir(parents=True)
    mix.joinpath("validation.jsonl").write_text(json.dumps(
        {"id": "v", "prompt": [{"role": "user", "content": "hi"}], "category": "c", "should_refuse": False}) + "\n")

    def loader(source):
        if source == "xstest":
            raise DataError("xstest: broken file")
        return smoke.toy_benchmark(source)

    with pytest.raises(DataError, match="broken file"):
        B.generate_model("m", params, tmp_path, progress=False, loader=loader)
    assert not (tmp_path / "gen").exists() or not any((tmp_path / "gen").iterdir())


def test_a_model_runs_only_the_benchmarks_it_lists(tmp_path):
    """generate.models.<m>.benchmarks: a subset is scored (here 1 of 2 sets); the rest get no folder."""
    from refusal_tokens import models, tiny

    base = tiny.save_tiny_base(tmp_path / "base", ["a tiny corpus of words about cats"] * 3)
    models.prepare_tokens(base, "single", "words", tmp_path / "models" / "m")
    mix = tmp_path / "mixes" / "r50" / "single"
    mix.mkdir(parents=True)
    mix.joinpath("validation.jsonl").write_text(json.dumps(
        {"id": "v", "prompt": [{"role": "user", "content": "hi"}], "category": "c", "should_refuse": False}) + "\n")
    params = {"generate": {"out": "gen", "models_root": "models", "mixes_dir": "mixes", "validation_mix": "r50",
                           "models": {"m": {"path": "m", "scheme": "single", "responses": False,
                                            "benchmarks": ["xstest"]}},
                           "temperatures": [1.0], "batch_size": 2, "score_batch_size": 2, "max_new_tokens": 2,
                           "seed": 0, "benchmarks": {"coconot_original": {"score": 2, "generate": 1},
                                                     "xstest": {"score": 2, "generate": 1}}}}
    meta = B.generate_model("m", params, tmp_path, progress=False, loader=smoke.toy_benchmark)
    assert sorted(meta["counts"]) == ["validation", "xstest"] and meta["counts"]["xstest"]["scored"] == 2
    assert sorted(p.name for p in (tmp_path / "gen" / "m").iterdir() if p.is_dir()) == ["validation", "xstest"]


def test_stratified_by_type_balances_prompt_types():
    rows = ([{"id": f"a{i}", "should_refuse": False, "category": "safe", "subcategory": "homonyms"} for i in range(8)]
            + [{"id": f"b{i}", "should_refuse": False, "category": "safe", "subcategory": "history"} for i in range(2)]
            + [{"id": f"c{i}", "should_refuse": True, "category": "unsafe", "subcategory": "contrast"}
               for i in range(10)])
    by_label = Counter(r["subcategory"] for r in B.stratified(rows, 6, 0))
    assert by_label["contrast"] == 3  # label-balanced only: the 3 safe rows follow the types' own shares
    by_type = Counter(r["subcategory"] for r in B.stratified(rows, 6, 0, ("should_refuse", "category", "subcategory")))
    assert by_type == {"homonyms": 2, "history": 2, "contrast": 2}


def test_wilson_equals_the_closed_form():
    # Wilson (1927): (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n), z = 1.96 for 95%
    k, n, z = 81, 263, 1.959964
    p = k / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = B.wilson(k, n)
    assert lo == pytest.approx(centre - half, abs=1e-6) and hi == pytest.approx(centre + half, abs=1e-6)


def test_control_matrix_columns_follow_the_rows_so_the_diagonal_is_the_diagonal():
    prompts = [{"id": "s", "category": SAFETY, "should_refuse": True},
               {"id": "i", "category": INCOMPLETE, "should_refuse": True},
               {"id": "c", "category": INCOMPLETE, "should_refuse": False}]
    scores = {"s": category_scores({SAFETY: 0.7}, 0.3), "i": category_scores({INCOMPLETE: 0.6}, 0.4),
              "c": category_scores({INCOMPLETE: 0.2}, 0.8)}
    m = C.category_control_matrix(prompts, scores, base=0.5, raised=0.9)
    # rows in CATEGORY_TOKENS order (Incomplete before Safety); original-prompt columns first, in the same order
    assert list(m.columns) == [f"{INCOMPLETE} (orig)", f"{SAFETY} (orig)", f"{INCOMPLETE} (contrast)"]


def test_category_control_curves_by_hand():
    prompts = [{"id": "s", "category": SAFETY, "should_refuse": True},
               {"id": "i", "category": INCOMPLETE, "should_refuse": True}]
    scores = {"s": category_scores({SAFETY: 0.7}, 0.3), "i": category_scores({INCOMPLETE: 0.6}, 0.4)}
    curves = C.category_control_curves(prompts, scores, base=0.5, thresholds=[0.0, 0.65, 1.0])
    own = curves[(curves["raised"] == INCOMPLETE) & (curves["group"] == INCOMPLETE)].set_index("threshold")["rate"]
    other = curves[(curves["raised"] == INCOMPLETE) & (curves["group"] == SAFETY)].set_index("threshold")["rate"]
    # p(incomplete token) = 0.6: refused at t = 0 only; the safety prompt (0.7 ≥ base 0.5) never moves
    assert own.to_dict() == {0.0: 1.0, 0.65: 0.0, 1.0: 0.0} and other.to_dict() == {0.0: 1.0, 0.65: 1.0, 1.0: 1.0}
    assert set(curves["raised"]) == set(CATEGORY_TOKENS)


def test_refuse_everything_f1_by_hand():
    # π = 3/5 should be refused: precision 0.6, recall 1 → F1 = 2·0.6/1.6 = 0.75
    df = frame([0.9, 0.8, 0.4], [0.6, 0.2])
    assert C.refuse_everything_f1(df) == pytest.approx(0.75)
    assert C.f1_curve(df, [0.0]).loc[0, "f1"] == pytest.approx(0.75)  # t = 0 refuses everything


def test_own_dial_range_finds_a_dead_dial():
    # the safety prompt's most likely category token is Incomplete's: raising Safety's threshold changes nothing
    prompts = [{"id": "s", "category": SAFETY, "should_refuse": True},
               {"id": "i", "category": INCOMPLETE, "should_refuse": True}]
    scores = {"s": category_scores({INCOMPLETE: 0.5, SAFETY: 0.2}, 0.3), "i": category_scores({INCOMPLETE: 0.6}, 0.4)}
    ranges = C.own_dial_range(C.category_control_curves(prompts, scores, base=0.5, thresholds=[0.0, 0.5, 1.0]))
    assert ranges[SAFETY] == 0.0 and ranges[INCOMPLETE] == 1.0


def test_table_takeaways_follow_the_cells():
    def row(bench, refuse, col, model, rate):
        return {"benchmark": bench, "should_refuse": refuse, "column": col, "model": model, "judge": "string",
                "rate": rate, "ci_low": max(0.0, rate - 0.1), "ci_high": min(1.0, rate + 0.1)}
    table = pd.DataFrame([row("coconot_original", True, "tok", "tok", 0.8), row("coconot_contrast", False, "tok", "tok", 0.2),
                          row("coconot_original", True, "base", "base", 0.1),
                          row("coconot_contrast", False, "base", "base", 0.0)])
    coconot, xstest = T.takeaways(table, "string", "tok", ["base"])
    assert "tok: refuses 80% [70%–90%] of what it should refuse and 20% [10%–30%] of what it should answer" in coconot
    assert "base: 10% [0%–20%] / 0% [0%–10%]" in coconot
    assert "not measured" in xstest  # no XSTest cells: never a number


def test_tradeoff_front_names_a_baseline_without_generations(tmp_path):
    with pytest.raises(DataError, match="ghost: no CoCoNot generations"):
        C.tradeoff_front(tmp_path, tmp_path, {}, [0.5], "string", baseline_models=["ghost"])
