"""SFT throughput on this machine: our CPU settings vs TRL's default SFTConfig, side by side in one run.

    python bench/sft_throughput.py [--model models/smollm2-135m/init/single-words] [--steps 3] [--warmup 1]

Both trainers see the same model, data (the r50 mix, single scheme, rows ≤ max_length) and batch size; only the
SFTConfig differs. TRL's defaults are bf16 + gradient checkpointing; `use_cpu=True` is added so that they run
here at all. The first `--warmup` steps of each run are not timed. Throughput counts non-padding tokens.
Achieved GFLOP/s use 6 · N · tokens (+ attention), N = parameters (tied embedding counted once, as the LM head),
and are compared with a fp32 GEMM peak measured by this script. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def gemm_peak(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def measure(label: str, args, model_dir: str, rows: list[dict], steps: int, warmup: int) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == warmup:
                marks.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            if state.global_step == warmup + steps:
                marks.append(time.perf_counter())

    data = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=[Clock()])
    trainer.train()
    tokens = {h["step"]: h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h}
    timed_tokens = tokens[warmup + steps] - tokens.get(warmup, 0)
    seconds = marks[1] - marks[0]
    n_params = sum(p.numel() for p in model.parameters())
    cfg = model.config
    seq = timed_tokens / (steps * args.per_device_train_batch_size)  # mean real length of a row
    flops_per_token = 6 * n_params + 12 * cfg.num_hidden_layers * seq * cfg.hidden_size
    return {"setting": label, "bf16": args.bf16, "gradient_checkpointing": args.gradient_checkpointing,
            "sampling": args.train_sampling_strategy, "timed_steps": steps, "tokens": timed_tokens,
            "seconds": seconds, "tokens_per_second": timed_tokens / seconds,
            "gflops": flops_per_token * timed_tokens / seconds / 1e9}


def main() -> None:
    from trl import SFTConfig

    from refusal_tokens import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/smollm2-135m/init/single-words")
    parser.add_argument("--data", default="data/processed/mixes/r50/single/train.jsonl")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--skip-defaults", action="store_true", help="only our settings (TRL defaults are slow)")
    opts = parser.parse_args()

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(opts.model)
    rows, _ = train.fit_length(train.load_rows(opts.data), tokenizer, opts.max_length)
    total = opts.steps + opts.warmup
    ours_cfg = train.TrainConfig(name="bench", scheme="single", model=opts.model, train_file=opts.data,
                                 validation_file=opts.data, output_dir="build/bench/out",
                                 checkpoint_dir="build/bench/ours", max_steps=total,
                                 per_device_train_batch_size=opts.batch, max_length=opts.max_length,
                                 save_steps=10_000, device="cpu")
    ours = train.sft_config(ours_cfg, len(rows), device="cpu")
    ours.save_strategy = "no"
    peak = gemm_peak()
    results = [measure("ours (fp32, no checkpointing)", ours, opts.model, rows, opts.steps, opts.warmup)]
    if not opts.skip_defaults:
        defaults = SFTConfig(output_dir="build/bench/trl_defaults", max_steps=total,
                             per_device_train_batch_size=opts.batch, max_length=opts.max_length, use_cpu=True,
                             report_to="none", logging_steps=1, save_strategy="no", disable_tqdm=True)
        results.append(measure("TRL SFTConfig defaults (+use_cpu)", defaults, opts.model, rows, opts.steps, opts.warmup))
    peak_after = gemm_peak()
    print(f"\nfp32 GEMM peak (2048³ matmul, {torch.get_num_threads()} threads): {peak:.1f} GFLOP/s before, "
          f"{peak_after:.1f} after")
    for r in results:
        print(f"{r['setting']:48s} {r['tokens_per_second']:7.1f} tokens/s  {r['gflops']:6.1f} GFLOP/s "
              f"= {r['gflops'] / max(peak, peak_after):5.1%} of GEMM peak  ({r['tokens']} tokens in {r['seconds']:.1f} s)")
    if len(results) == 2:
        print(f"speed-up of ours over TRL defaults: {results[0]['tokens_per_second'] / results[1]['tokens_per_second']:.2f}×")
    print(json.dumps({"gemm_peak_gflops": [peak, peak_after], "runs": results}, indent=2))


if __name__ == "__main__":
    main()
