"""The training budget's trade-off, measured: one single-token model per (mix size, steps), trained exactly as
``train@single_r50`` is (same init, lr, batch, padding-free, frozen blocks), then scored on CoCoNot's held-out
original vs contrast prompts (E1) and on XSTest unsafe vs safe (out of distribution).

    python bench/budget_tradeoff.py --name s130 --size 600 --steps 130
    python bench/budget_tradeoff.py --name n720 --size 720 --steps 100

The mix is rebuilt from ``params.yaml: data`` with only ``size`` changed (the main r50 mix, written under
``build/budget/<name>/``) and trained with ``train.common``'s settings; unlike ``train@single_r50`` there are no
learning-curve evaluations during training (they read the model, they do not change it). Appends one record
(AUROCs; ``train_seconds``, from the start — evaluation sets loaded, mix built — to the end of training; the
command, the date, the CPU) to ``reports/bench/budget_tradeoff.json``. ``--set seed=N`` repeats a setting with another
data order: differences between single runs are mostly that (``--summary`` pools the seeds of each setting).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


# train.common keys this bench sets itself: no learning-curve evaluations, no checkpoints, the steps from --steps
FIXED = ("max_steps", "curve_every", "save_steps", "score_rows")


def main() -> None:
    from common import provenance
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from refusal_tokens import config, control, mixing, sources, train
    from refusal_tokens.benchmarks import benchmark_rows
    from refusal_tokens.decontaminate import EvalIndex

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="a name for this run (required unless --summary)")
    parser.add_argument("--summary", action="store_true",
                        help="print the recorded runs grouped by setting (seeds pooled: mean, min, max) and exit")
    parser.add_argument("--size", type=int, default=600)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a train.common key (e.g. learning_rate=3e-4) or, with a data. prefix, a data key "
                             "(e.g. data.contrast_share=0.6); values are read as YAML")
    parser.add_argument("--out", default=str(HERE.parent / "reports" / "bench" / "budget_tradeoff.json"))
    opts = parser.parse_args()
    if opts.summary:
        return summary(Path(opts.out))
    if not opts.name:
        parser.error("--name is required")
    mirror = os.environ.get("REFUSAL_TOKENS_MIRROR")
    params = yaml.safe_load((HERE.parent / "params.yaml").read_text())
    data = {**params["data"], "size": opts.size, "refusal_proportions": [0.5], "extra_mixes": {}}
    common = dict(params["train"]["common"])
    overrides = {}
    for item in opts.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set needs KEY=VALUE, got {item!r}")
        target, key = (data, key[5:]) if key.startswith("data.") else (common, key)
        if key not in target or (target is common and key in FIXED) or (target is data and key == "size"):
            parser.error(f"--set: unknown or fixed key {item.split('=')[0]!r} (the mix size is --size, the steps "
                         f"--steps; fixed here: {sorted(FIXED)})")
        target[key] = overrides[item.split("=")[0]] = yaml.safe_load(value)
    root = HERE.parent / "build" / "budget" / opts.name
    start = time.perf_counter()
    names = [n for n, s in sources.SOURCES.items() if s.role in ("eval", "judge") and not s.hub]
    evals = {n: r for n in names if (r := sources.try_load(n, mirror)[0])}
    evals, _ = mixing.decontamination_sets(evals, sources.load("coconot_original_train", mirror))
    spec = mixing.specs_from_params(config.check_section("data", data).model_dump(exclude_unset=True))[0]
    mixing.write_mix(mixing.build_mix(spec, EvalIndex.build(evals), mirror=mirror), root / "mixes")
    cfg = train.TrainConfig.from_mapping({
        **{k: v for k, v in common.items() if k not in FIXED}, "name": opts.name, "scheme": "single",
        "model": f"{params['model']['dir']}/{params['model']['name']}/init/single-words",
        "train_file": str(root / "mixes/r50/single/train.jsonl"),
        "validation_file": str(root / "mixes/r50/single/validation.jsonl"), "output_dir": str(root / "out"),
        "checkpoint_dir": str(root / "ckpt"), "max_steps": opts.steps, "save_steps": 10_000})
    train.run(cfg)
    trained = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(root / "out", dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(root / "out")
    record = {"name": opts.name, "size": opts.size, "steps": opts.steps, "overrides": overrides,
              "train": {k: getattr(cfg, k) for k in SETTING_KEYS}, "train_seconds": trained - start}
    for label, benches in (("auroc_coconot_heldout", ("coconot_original", "coconot_contrast")),
                           ("auroc_xstest", ("xstest",))):
        rows = [r for b in benches for r in benchmark_rows(b, mirror)]
        scores = control.score(model, tok, [r["conversation"] for r in rows], "single", batch_size=32, max_tokens=1024)
        record[label] = train.auroc([control.p_refusal(s, "single") for s in scores], [r["should_refuse"] for r in rows])
    record.update(provenance())
    print(json.dumps(record, indent=2))
    out = Path(opts.out)
    runs = json.loads(out.read_text())["runs"] if out.is_file() else []
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"script": "bench/budget_tradeoff.py", "runs": runs + [record]}, indent=2) + "\n")


# the training settings a record names (besides size, steps and seed)
SETTING_KEYS = ("freeze_layers", "learning_rate", "lr_scheduler_type", "warmup_ratio", "per_device_train_batch_size")


def setting_of(run: dict) -> str:
    """A run's setting without its seed: size, steps, frozen blocks and the other overrides. Records written before
    the ``train`` field existed ran with the then default of 20 frozen blocks unless an override says otherwise."""
    rest = {k: v for k, v in run.get("overrides", {}).items() if k not in ("seed", "freeze_layers")}
    freeze = run.get("train", {}).get("freeze_layers", run.get("overrides", {}).get("freeze_layers", 20))
    return (f"size {run['size']}, {run['steps']} steps, freeze {freeze}"
            + "".join(f", {k}={v}" for k, v in sorted(rest.items())))


def summary(path: Path) -> None:
    """Per setting: the seeds run, and CoCoNot held-out / XSTest AUROC as mean [min–max] over them."""
    from collections import defaultdict

    groups = defaultdict(list)
    if not path.is_file():
        raise SystemExit(f"{path}: no runs recorded yet")
    for run in json.loads(path.read_text())["runs"]:
        groups[setting_of(run)].append(run)
    print(f"{'setting':76s} {'seeds':8s} {'CoCoNot held-out':22s} XSTest")
    for setting, runs in groups.items():
        seeds = ",".join(str(r.get("overrides", {}).get("seed", 0)) for r in runs)

        def cell(key):
            values = [r[key] for r in runs]
            mean = sum(values) / len(values)
            return f"{mean:.3f}" + (f" [{min(values):.3f}–{max(values):.3f}]" if len(values) > 1 else "")

        print(f"{setting:76s} {seeds:8s} {cell('auroc_coconot_heldout'):22s} {cell('auroc_xstest')}")


if __name__ == "__main__":
    main()
