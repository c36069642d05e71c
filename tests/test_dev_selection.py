"""The dev-selection rule of bench/dev_selection.py, on hand-made records: what it picks can be checked by eye."""

from .bench_scripts import load

dev_selection = load("dev_selection")


def run(share, steps, seed=0, freeze=15):
    """A record shaped like the bench's: ``steps`` = {step: (CoCoNot dev, harm dev, benign refused)}."""
    return {"share": share, "size": 1200, "train": {"freeze_layers": freeze, "learning_rate": 2e-4, "max_length": 192,
                                                    "seed": seed},
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
