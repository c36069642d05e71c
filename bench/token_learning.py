"""How fast the scheme token is learned under different init / learning-rate schemes (the probes behind the
README's choice). Each setting trains the `single` scheme on the r10 mix for the same steps and reports, on the
validation split, AUROC of p([refuse]) (refusal vs answer prompts), first-token accuracy and validation loss.

    python bench/token_learning.py --steps 20 --setting words:2e-4:0 --setting words:1e-3:0 --setting words:2e-4:3e-3

A setting is INIT:LR:NEW_TOKEN_LR (INIT ∈ words|mean, a prepared models/<name>/init/single-INIT folder).
About 4–5 minutes per setting on the 2-core CPU. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from refusal_tokens import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="models/smollm2-135m")
    parser.add_argument("--mix", default="data/processed/mixes/r10/single")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--setting", action="append", required=True)
    opts = parser.parse_args()
    results = []
    for setting in opts.setting:
        init, lr, new_lr = setting.split(":")
        work = tempfile.mkdtemp(prefix="token-learning-")
        cfg = train.TrainConfig.from_mapping(dict(
            name=f"probe-{setting}", scheme="single", model=f"{opts.models}/init/single-{init}", init=init,
            train_file=f"{opts.mix}/train.jsonl", validation_file=f"{opts.mix}/validation.jsonl",
            output_dir=f"{work}/out", checkpoint_dir=f"{work}/ckpt", max_steps=opts.steps,
            per_device_train_batch_size=8, max_length=192, eval_rows=32, curve_every=10, save_steps=10_000,
            lr_scheduler_type="constant", learning_rate=float(lr), new_token_lr=float(new_lr), device="cpu"))
        metrics = train.run(cfg)
        results.append({"setting": setting, **{k: metrics[k] for k in (
            "auroc", "first_token_accuracy", "final_validation_loss", "tokens_per_second", "wall_seconds")}})
        print(json.dumps(results[-1]), flush=True)
    print(f"\n{'init:lr:new_token_lr':24s} {'AUROC':>6s} {'acc':>6s} {'val loss':>8s} {'tok/s':>6s}")
    for r in results:
        print(f"{r['setting']:24s} {r['auroc']:6.3f} {r['first_token_accuracy']:6.3f} "
              f"{r['final_validation_loss']:8.3f} {r['tokens_per_second']:6.1f}")


if __name__ == "__main__":
    main()
