"""One training run is one draw: the chosen setting (``params.yaml`` as it stands) retrained with other seeds, then
read on the **test** sets exactly as the pipeline reads its own seed. Nothing here chooses anything.

    python bench/seeds.py --seed 1 --seed 2 --seed 3
    python bench/seeds.py --summary

Per seed: ``train.common.seed`` set (the data order and the new rows' dropout draws; the mix itself is
``data.seed``'s, the pipeline's), the single-token model trained on the main mix as ``train@single_*`` is, then scored:
- E1: AUROC of p([refuse]), CoCoNot original (test part) vs contrast (test half);
- E2 (token): refusal on original minus contrast at the best-F1 threshold chosen on the mix's validation split
  (``calibration.choose_thresholds`` on the same grid as notebook 03), with the conservative low end;
- XSTest AUROC, unsafe vs safe;
- ordinary instructions: the share whose greedy first token is ``[refuse]``.
Appends one record per seed to ``reports/bench/seeds.json``; ``--summary`` prints mean [min–max] over those of the
setting ``params.yaml`` holds now (share, steps, schedule, frozen blocks, …; earlier settings' runs stay in the file,
left out with a count) and the pipeline's own seed (``reports/metrics/evidence.json``; its validation AUROC is not in
that file: "—").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TEST = {"coconot": ("coconot_original", "coconot_contrast"), "xstest": ("xstest",), "benign": ("benign_instructions",)}


def test_metrics(model, tokenizer, validation_file: str, mirror, n_thresholds: int) -> dict:
    import pandas as pd

    from refusal_tokens import calibration as cal, control, evidence, train
    from refusal_tokens.benchmarks import benchmark_rows, validation_rows
    from refusal_tokens.control import Setting, threshold_grid

    def scored(rows):
        scores = control.score(model, tokenizer, [r["conversation"] for r in rows], "single", batch_size=32,
                               max_tokens=1024)
        return {r["id"]: s for r, s in zip(rows, scores)}

    rows = {k: [r for b in names for r in benchmark_rows(b, mirror)] for k, names in TEST.items()}
    val = validation_rows(validation_file)
    scores = {k: scored(v) for k, v in {**rows, "validation": val}.items()}
    grid = threshold_grid(n_thresholds)
    best = cal.choose_thresholds(cal.frame(val, scores["validation"], "single"), grid, 0.95, 0.05)["best_f1"]
    setting = Setting("best F1", "threshold", best["threshold"])
    run = {"prompts": rows["coconot"], "scores": scores["coconot"]}
    e2 = evidence.gap(*evidence.token_refusals(run, "single", setting))
    p = lambda k: [control.p_refusal(scores[k][r["id"]], "single") for r in rows[k]]  # noqa: E731
    y = lambda k: [bool(r["should_refuse"]) for r in rows[k]]  # noqa: E731
    benign = [scores["benign"][r["id"]]["top"] == "[refuse]" for r in rows["benign"]]
    return {"e1_auroc": train.auroc(p("coconot"), y("coconot")), "xstest_auroc": train.auroc(p("xstest"), y("xstest")),
            "e2_threshold": best["threshold"], "e2_gap_points": e2["gap_points"],
            "e2_gap_points_low": e2["gap_points_low"], "benign_refusal_greedy": sum(benign) / len(benign),
            "validation_auroc": cal.roc_points(cal.frame(val, scores["validation"], "single"))["auroc"],
            "n": {k: len(v) for k, v in rows.items()}}


def main() -> None:
    import torch
    import yaml
    from common import provenance
    from dev_selection import append_record, prepare
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from refusal_tokens import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, action="append", default=[], help="a training seed (repeatable)")
    parser.add_argument("--summary", action="store_true", help="print mean [min–max] over the recorded seeds")
    parser.add_argument("--out", default=str(HERE.parent / "reports" / "bench" / "seeds.json"))
    opts = parser.parse_args()
    if opts.summary:
        summary(Path(opts.out))
        return
    if not opts.seed:
        parser.error("give at least one --seed")
    params = yaml.safe_load((HERE.parent / "params.yaml").read_text())
    steps = params["train"]["common"]["max_steps"]
    mirror = os.environ.get("REFUSAL_TOKENS_MIRROR")
    for seed in opts.seed:
        start = time.perf_counter()
        cfg, record, _ = prepare(f"seed{seed}", None, [f"seed={seed}"], steps, parser.error, "seeds")
        metrics = train.run(cfg)
        model = AutoModelForCausalLM.from_pretrained(cfg.output_dir, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(cfg.output_dir)
        with torch.no_grad():
            record["test"] = test_metrics(model, tokenizer, cfg.validation_file, mirror,
                                          params["calibration"]["n_thresholds"])
        record.update({"steps": steps, "train_runtime": metrics.get("train_runtime"),
                       "wall_seconds": time.perf_counter() - start, **provenance()})
        print(json.dumps(record, indent=2))
        append_record(opts.out, "bench/seeds.py", record)


KEYS = ("e1_auroc", "xstest_auroc", "e2_gap_points", "e2_gap_points_low", "benign_refusal_greedy", "validation_auroc")
# The pipeline's own run of the same setting (train.common.seed), read from its metrics file under the bench's names
PIPELINE = {"e1_auroc": "e1_auroc_coconot_single", "xstest_auroc": "xstest_auroc_single",
            "e2_gap_points": "e2_gap_points_single", "e2_gap_points_low": "e2_gap_low_points_single",
            "benign_refusal_greedy": "benign_refusal_greedy_token_single"}


def pipeline_run(evidence: Path, params: Path) -> dict | None:
    """The pipeline's seed as one more run (``reports/metrics/evidence.json``), or None when it has not run."""
    import yaml

    if not evidence.is_file():
        return None
    metrics = json.loads(evidence.read_text())
    seed = yaml.safe_load(params.read_text())["train"]["common"]["seed"]
    return {"train": {"seed": seed}, "source": "pipeline", "test": {k: metrics.get(v) for k, v in PIPELINE.items()}}


def setting_of(params: Path) -> dict:
    """The setting params.yaml trains now, in a record's terms: the main mix's share, the steps, and the train keys
    every record carries (``dev_selection.SETTING_KEYS``, which writes them) but the seed."""
    import yaml
    from dev_selection import SETTING_KEYS

    values = yaml.safe_load(params.read_text())
    common = values["train"]["common"]
    return {"share": values["data"]["refusal_proportions"][0], "steps": common["max_steps"],
            "train": {k: common[k] for k in SETTING_KEYS if k != "seed"}}


def same_setting(run: dict, setting: dict) -> bool:
    return (run.get("share") == setting["share"] and run.get("steps") == setting["steps"]
            and all(run.get("train", {}).get(k) == v for k, v in setting["train"].items()))


def summary(path: Path, evidence: Path = HERE.parent / "reports" / "metrics" / "evidence.json",
            params: Path = HERE.parent / "params.yaml") -> dict:
    """Print (and return) mean [min–max] per metric over the pipeline's seed and the recorded bench seeds of the
    setting params.yaml holds now (runs of earlier settings stay in the file and are left out, with a count)."""
    if not path.is_file():
        raise SystemExit(f"{path}: no runs recorded yet")
    setting = setting_of(params)
    recorded = json.loads(path.read_text())["runs"]
    runs = [r for r in recorded if same_setting(r, setting)]
    if len(runs) < len(recorded):
        print(f"left out: {len(recorded) - len(runs)} recorded run(s) of another setting than params.yaml's "
              f"(share {setting['share']}, {setting['steps']} steps, {setting['train']})")
    own = pipeline_run(evidence, params)
    runs = ([own] if own else []) + runs
    if not runs:
        raise SystemExit(f"{path}: no runs of params.yaml's setting recorded yet, and no pipeline run")
    print("seeds:", ", ".join(f"{r['train']['seed']}" + (" (pipeline)" if r.get("source") else "") for r in runs))
    out = {}
    for key in KEYS:
        values = [r["test"].get(key) for r in runs]
        known = [v for v in values if v is not None]
        out[key] = {"mean": sum(known) / len(known), "min": min(known), "max": max(known), "values": values}
        print(f"{key:24s} {out[key]['mean']:8.3f} [{min(known):.3f}–{max(known):.3f}]   "
              + " ".join("—" if v is None else f"{v:.3f}" for v in values))
    return out


if __name__ == "__main__":
    main()
