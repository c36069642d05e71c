"""The generated report: every number in it is read from a file the pipeline wrote, never typed."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from refusal_tokens import report as R
from refusal_tokens.benchmarks import REFERENCE
from refusal_tokens.notebook import project_root
from tests.test_benchmarks import run_smoke_pipeline

# A number standing alone: not part of a name or version (SmolLM2-135M, r50, 2.13.0, 03_roc.png, arXiv 2412.06748).
NUMBER = re.compile(r"(?<![\w.\-/])(\d+(?:\.\d+)?)(?![\w\-/]|\.\d)")
# Citations, not results: the paper's and the reference column's arXiv ids and the reference column's values.
CITED = {"2412.06748", "2603.13359"} | {f"{v:.2f}" for v in REFERENCE.values()} | {f"{v:g}" for v in REFERENCE.values()}


TABLES = {"cells", "runs"}  # the only long lists the report reads (benchmark table cells, bench runs)


def numeric_leaves(value, key: str = "") -> list[float]:
    """Every number in a JSON value, except inside long lists (curves, sweeps, per-row records) that the report
    never prints: a number traced to one of those would trace to almost anything."""
    if isinstance(value, bool):
        return [float(value)]
    if isinstance(value, (int, float)):
        return [float(value)] if math.isfinite(value) else []
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in numeric_leaves(v, k)]
    if isinstance(value, list) and (len(value) <= 10 or key in TABLES):
        return [x for v in value for x in numeric_leaves(v)]
    return []


def renderings(values: list[float]) -> set[str]:
    out = set()
    for v in values:
        for x in (v, 100 * v):
            out |= {f"{x:.0f}", f"{x:.1f}", f"{x:.2f}", f"{x:.3f}", f"{x:.3g}", f"{x:g}"}
    return out


def numbers_in(text: str) -> list[str]:
    text = re.sub(r"notebooks? \d+", "notebook", text)  # "notebook 01" names a file
    return [m.group(1) for m in NUMBER.finditer(text)]


def test_number_pattern_by_hand():
    assert numbers_in("AUROC 0.87 (n 495), 60 points, SmolLM2-135M r50 torch 2.13.0 03_roc.png 45% notebook 01") == \
        ["0.87", "495", "60", "45"]


MODELS = ["base", "none_r50", "single_r50", "category_r50"]


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    run_smoke_pipeline(root)
    text = R.write_report(root, project_root(), "smoke", "models/tiny", "data/generations",
                          ["single_r50", "category_r50"], MODELS, "string",
                          {"calibration": "03_calibration"}, {"cores": 2})
    return root, text


def test_every_number_in_the_report_is_read_from_a_file(smoke_report):
    root, text = smoke_report
    body = text.split("## What was run")[0]  # provenance (versions, md5s, durations) is checked below
    sources = [*(root / "reports" / "metrics").glob("*.json"), *(root / "reports" / "params").glob("*.json")]
    assert len(sources) >= 4
    allowed = renderings([x for p in sources for x in numeric_leaves(json.loads(p.read_text()))]) | CITED
    untraced = sorted({n for n in numbers_in(body) if n not in allowed})
    assert untraced == [], f"numbers in the report that no metrics file holds: {untraced}"


def test_report_reads_durations_and_hashes_from_the_stages(smoke_report):
    root, text = smoke_report
    provenance = text.split("## What was run")[1]
    runs = [json.loads((root / "data" / "generations" / m / "run.json").read_text())["seconds"] for m in MODELS]
    assert runs and all(f"{s:.1f}" in provenance for s in runs)
    assert "Deviations from the paper" in text and "| Deviation" not in text  # linked, not copied
    assert (root / "reports" / "README.md").read_text() == text


def test_a_typed_number_would_be_caught(smoke_report):
    root, text = smoke_report
    sources = [*(root / "reports" / "metrics").glob("*.json")]
    allowed = renderings([x for p in sources for x in numeric_leaves(json.loads(p.read_text()))]) | CITED
    assert [n for n in numbers_in("the token reached AUROC 0.123456 on 7919 prompts") if n not in allowed]


def test_report_refuses_to_run_without_metrics(tmp_path):
    from refusal_tokens.errors import DataError

    with pytest.raises(DataError, match="calibration.json not found"):
        R.write_report(tmp_path, project_root(), "x", "m", "g", [], [], "string", {}, {})
    assert not (tmp_path / "reports" / "README.md").exists()


GOALS = {"e1_auroc": 0.85, "e2_gap_points": 40.0, "e2_gap_low_points": 30.0, "e3_own_points": 30.0,
         "e3_other_points": 5.0, "xstest_auroc": 0.7, "benign_refusal": 0.05}
PRESENT = {"e1_auroc_coconot_single": 0.9, "e1_auroc_coconot_category": 0.88, "e2_threshold_single": 0.3,
           "e2_gap_points_single": 60.0, "e2_gap_points_category": 55.0, "e3_categories_meeting": 5,
           "e5_front_at_or_above_all_single": True, "xstest_auroc_single": 0.8, "ablation_contrast_refusal_without": 0.8,
           "ablation_contrast_refusal_with": 0.1, "ablation_auroc_coconot_without": 0.6,
           "e2_gap_low_points_single": 45.0, "benign_refusal_greedy_token_single": 0.02,
           "benign_refusal_greedy_text_single": 0.03, "benign_refusal_greedy_token_category": 0.04}
ABSENT = {**PRESENT, "e1_auroc_coconot_single": 0.48, "e2_gap_points_single": 3.0, "e5_front_at_or_above_all_single": False,
          "xstest_auroc_single": 0.52, "e2_gap_low_points_single": -10.0, "benign_refusal_greedy_token_single": 0.3}
DIAG = {"frozen_cv_auroc_coconot_best": 0.95, "shortcut_auroc_coconot": 0.8, "frozen_mix_to_xstest_auroc": 0.55,
        "frozen_cv_auroc_xstest": 0.94}


def test_findings_follow_the_numbers():
    present, absent = R.findings(PRESENT, DIAG, GOALS), R.findings(ABSENT, DIAG, GOALS)
    assert "separates them well (AUROC 0.90)" in present[0] and ": met)" in present[0]
    assert "does not separate them (AUROC 0.48" in absent[0] and ": missed)" in absent[0]
    assert "gap between original and contrast refusal is 60 points" in present[1] and "met" in present[1]
    assert "is 3 points" in absent[1] and "missed" in absent[1]
    assert "low end is 45 points (goal above 30: met)" in present[1] and "low end is -10 points" in absent[1]
    # over-refusal of ordinary requests: lower is better
    assert "2.0% of ordinary" in present[2] and "goal ≤ 5%: met)" in present[2]
    assert "30.0% of ordinary" in absent[2] and "goal ≤ 5%: missed)" in absent[2]
    assert "at or above every" in present[4] and "below at least one" in absent[4]
    assert "separates them well" not in absent[5] and "does not separate them" in absent[5]
    assert "the representation can tell the two apart, the training data does not teach it" in absent[5]
    assert R.findings({}, {}, {}) == ["No evidence metrics were found (run notebook 03)."]
