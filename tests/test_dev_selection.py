"""The dev-selection rule of bench/dev_selection.py, on hand-made records: what it picks can be checked by eye."""

from .bench_scripts import load

dev_selection = load("dev_selection")


def run(share, steps, seed=0, freeze=15, **schedule):
    """A record shaped like the bench's: ``steps`` = {step: (CoCoNot dev, harm dev, benign refused)}."""
    return {"share": share, "size": 1200, "train": {"freeze_layers": freeze, "learning_rate": 2e-4, "max_length": 192,
                                                    "seed": seed, **schedule},
            "steps": {str(k): {"auroc_coconot_dev": c, "auroc_harm_dev": h, "benign_dev_refusal": b}
                      for k, (c, h, b) in steps.items()}}


def test_the_best_sum_wins_among_settings_that_do_not_over_refuse():
    runs = [run(0.2, {120: (0.80, 0.80, 0.01), 240: (0.90, 0.90, 0.20)}),   # 240: best sum, but refuses 20% of benign
            run(0.1, {120: (0.82, 0.85, 0.04)})]
    (setting, mean) = dev_selection.choose(runs)
    assert (setting[0], setting[5]) == (0.1, 120)  # 1.67 beats 1.60; 1.80 is excluded (0.20 > 0.05)
    assert mean["benign_dev_refusal"] == 0.04


def test_near_ties_go_to_fewer_steps_and_seeds_are_averaged():
    runs = [run(0.2, {120: (0.80, 0.80, 0.0), 300: (0.805, 0.80, 0.0)}),   # 1.600 vs 1.605: within 0.01
            run(0.2, {120: (0.80, 0.80, 0.10)}, seed=1)]                   # seed 1 at 120: mean benign 0.05, allowed
    (setting, mean) = dev_selection.choose(runs)
    assert setting[5] == 120 and abs(mean["benign_dev_refusal"] - 0.05) < 1e-12


def test_nothing_qualifies_when_every_setting_over_refuses():
    assert dev_selection.choose([run(0.33, {120: (0.9, 0.9, 0.3)})]) is None


def test_a_mean_of_exactly_five_percent_is_allowed_despite_float_rounding():
    # (0.02 + 0.08 + 0.05) / 3 = 0.05000000000000001 in floats; the rule means 5% of the dev instructions, so it passes
    runs = [run(0.33, {300: (0.8, 0.9, b)}, seed=seed) for seed, b in enumerate((0.02, 0.08, 0.05))]
    (setting, mean) = dev_selection.choose(runs)
    assert setting[5] == 300 and abs(mean["benign_dev_refusal"] - 0.05) < 1e-12


def test_schedules_are_separate_settings_and_records_without_one_are_constant():
    # the same share, steps and blocks under two schedules: two settings, never averaged together; the old records
    # (no schedule keys) are the constant rate. Cosine's 1.75 beats constant's 1.70 by more than 0.01
    runs = [run(0.33, {300: (0.85, 0.85, 0.0)}),
            run(0.33, {300: (0.87, 0.88, 0.0)}, lr_scheduler_type="cosine", warmup_ratio=0.1)]
    assert sorted(k[6] for k in dev_selection.settings(runs)) == ["constant", "cosine, warmup 0.1"]
    (setting, mean) = dev_selection.choose(runs)
    assert setting[6] == "cosine, warmup 0.1" and abs(mean["auroc_coconot_dev"] - 0.87) < 1e-12


def test_a_length_dependent_schedule_is_scored_at_its_last_step_only(tmp_path, monkeypatch, capsys):
    # cosine with warmup: step 120 of a 300-step run is not a 120-step run, so two --score-at steps are one clear
    # error, before any mix is built or any record written
    import pytest

    out = tmp_path / "dev.json"
    monkeypatch.setattr("sys.argv", ["dev_selection.py", "--name", "t", "--set", "lr_scheduler_type=cosine",
                                     "--set", "warmup_ratio=0.1", "--score-at", "120", "300", "--out", str(out)])
    with pytest.raises(SystemExit) as stop:
        dev_selection.main()
    assert stop.value.code == 2 and "score only the last step" in capsys.readouterr().err
    assert not out.exists() and not (dev_selection.HERE.parent / "build" / "dev_selection" / "t").exists()


def test_adapter_runs_are_their_own_setting_and_win_a_near_tie_as_the_cheaper():
    # the same share, steps and blocks, trained in full (old records: no lora keys) and with LoRA r16: two settings.
    # 1.700 vs 1.695 is within 0.01, so the adapters (no weight gradients in the trained blocks) are preferred;
    # 0.02 more for the full weights would win outright
    lora = {"lora_rank": 16, "lora_alpha": 32.0}
    runs = [run(0.1, {240: (0.85, 0.85, 0.02)}), run(0.1, {240: (0.85, 0.845, 0.02)}, **lora)]
    assert sorted(k[7] for k in dev_selection.settings(runs)) == ["LoRA r16 a32", "weights"]
    assert dev_selection.choose(runs)[0][7] == "LoRA r16 a32"
    runs[0]["steps"]["240"]["auroc_harm_dev"] = 0.87
    assert dev_selection.choose(runs)[0][7] == "weights"


def test_bad_lora_options_stop_before_anything_is_built(tmp_path, monkeypatch, capsys):
    import pytest

    assert dev_selection.parse_lora("16:32", None) == (16, 32.0) and dev_selection.parse_lora(None, None) is None
    out = tmp_path / "dev.json"
    for bad in ("16", "0:32", "16:0", "r16:32"):
        monkeypatch.setattr("sys.argv", ["dev_selection.py", "--name", "t", "--lora", bad, "--out", str(out)])
        with pytest.raises(SystemExit) as stop:
            dev_selection.main()
        assert stop.value.code == 2 and "expected RANK:ALPHA" in capsys.readouterr().err
    assert not out.exists() and not (dev_selection.HERE.parent / "build" / "dev_selection" / "t").exists()
