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
Appends one record per seed to ``reports/bench/seeds.json``; ``--summary`` prints mean [min–max].
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
        return summary(Path(opts.out))
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


def summary(path: Path) -> None:
    if not path.is_file():
        raise SystemExit(f"{path}: no runs recorded yet")
    runs = json.loads(path.read_text())["runs"]
    print("seeds:", ", ".join(str(r["train"]["seed"]) for r in runs))
    for key in KEYS:
        values = [r["test"][key] for r in runs]
        print(f"{key:24s} {sum(values) / len(values):8.3f} [{min(values):.3f}–{max(values):.3f}]   "
              + " ".join(f"{v:.3f}" for v in values))


if __name__ == "__main__":
    main()
