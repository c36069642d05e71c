"""The evidence and diagnostics functions, on hand-made numbers whose answers can be checked by hand."""

import numpy as np
import pytest

from refusal_tokens import diagnostics as D
from refusal_tokens import evidence as E
from refusal_tokens.errors import DataError


def test_gap_is_original_minus_contrast_in_points():
    g = E.gap([True, True, True, False], [False, False, False, True])  # 75% vs 25%
    assert g["gap_points"] == pytest.approx(50.0)
    assert g["gap_points_low"] < g["gap_points"]  # the conservative bound uses both intervals
    with pytest.raises(DataError, match="both sides"):
        E.gap([], [True])


def test_control_independence_reads_own_and_other_changes():
    delta = {"A": {"A (orig)": -0.50, "B (orig)": 0.02, "A (contrast)": -0.03},
             "B": {"A (orig)": -0.10, "B (orig)": -0.60},
             "C": {"A (orig)": 0.0},                                           # no C prompts to measure
             "D": {"D (orig)": -0.40, "A (orig)": 0.0, "A (contrast)": -0.2}}  # moves what must be answered
    r = E.control_independence(delta)["per_category"]
    assert r["A"] == {"own_points": -50.0, "max_other_points": 2.0, "max_contrast_points": 3.0, "meets": True}
    assert r["D"]["meets"] is False and r["D"]["max_contrast_points"] == pytest.approx(20.0)
    assert r["B"]["meets"] is False and r["B"]["max_other_points"] == pytest.approx(10.0)
    assert r["C"]["meets"] is False and r["C"]["own_points"] is None


def test_front_interpolates_between_thresholds_and_compares_with_points():
    sweep = [(0.0, 0.0), (0.2, 0.6), (0.6, 0.9), (1.0, 1.0)]
    assert E.front_tpr_at(0.4, sweep) == pytest.approx(0.75)  # halfway between (0.2, 0.6) and (0.6, 0.9)
    assert E.front_tpr_at(0.1, sweep) == pytest.approx(0.3)
    result = E.front_vs_points(sweep, [{"label": "above", "tpr": 0.5, "fpr": 0.2, "tpr_ci_low": 0.4},
                                       {"label": "below", "tpr": 0.8, "fpr": 0.2, "tpr_ci_low": 0.55}])
    assert result["points"]["above"]["margin_points"] == pytest.approx(10.0)
    assert result["points"]["below"]["at_or_above"] is False and result["points"]["below"]["within_ci"] is True
    assert result["all_at_or_above"] is False and result["all_within_ci"] is True
    # a text-judged front that starts at FPR 0.2 (text refuses after [respond]) cannot reach a point at FPR 0.1
    shifted = E.front_vs_points([(0.2, 0.3), (0.6, 0.9)], [{"label": "low", "tpr": 0.4, "fpr": 0.1}])
    assert shifted["front_lowest_fpr"] == 0.2 and shifted["points"]["low"]["front_reaches_fpr"] is False


def test_verdicts_and_phrases_follow_the_numbers():
    assert E.verdict(0.9, 0.85) == "met" and E.verdict(0.8, 0.85) == "missed by 0.05"
    assert E.verdict(None, 0.85) == "not measured"
    assert E.separation_phrase(0.48).startswith("does not separate")
    assert E.separation_phrase(0.9).startswith("separates them well")
    assert E.separation_phrase(0.6).startswith("barely")


def test_within_group_auroc_ignores_one_sided_groups():
    rows = ([{"subcategory": "a", "should_refuse": y, "p_refusal": p} for y, p in
             [(True, 0.9), (True, 0.8), (False, 0.1), (False, 0.85)]]          # a: 3 of 4 pairs ordered → 0.75
            + [{"subcategory": "b", "should_refuse": True, "p_refusal": 0.2}] * 3)  # b: refusals only
    r = D.within_group_auroc(rows)
    assert r["groups"]["a"]["auroc"] == pytest.approx(0.75) and r["one_sided"] == ["b"]
    assert r["mean"] == pytest.approx(0.75)


def test_shortcut_baseline_learns_words_and_fails_without_them():
    train = ([{"prompt": f"how to hack thing {i}", "should_refuse": True} for i in range(10)]
             + [{"prompt": f"how to bake thing {i}", "should_refuse": False} for i in range(10)])
    tests = {"same words": [{"prompt": "hack it", "should_refuse": True}, {"prompt": "bake it", "should_refuse": False}],
             "new words": [{"prompt": "steal it", "should_refuse": True}, {"prompt": "cook it", "should_refuse": False}]}
    r = D.shortcut_baseline(train, tests)
    assert r["same words"] == 1.0 and r["new words"] == 0.5  # unseen words carry no signal: a tie


def test_probes_separate_separable_features():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (40, 5)) + [3, 0, 0, 0, 0], rng.normal(0, 1, (40, 5))])
    y = [True] * 40 + [False] * 40
    assert D.probe_cv(x, y, folds=4) > 0.95
    assert D.probe_transfer(x[::2], y[::2], x[1::2], y[1::2]) > 0.95
    noise = rng.normal(0, 1, (80, 5))
    assert D.probe_cv(noise, y, folds=4) < 0.75
    with pytest.raises(DataError, match="both classes"):
        D.probe_transfer(x[:40], y[:40], x, y)


def test_docstring_examples():
    import doctest

    for module in (E, D):
        assert doctest.testmod(module).failed == 0, module.__name__
