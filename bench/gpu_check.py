"""The GPU check: one short script that says whether the pipeline's three costly steps work and how fast, on an
accelerator (``--device cuda``, bf16 autocast with fp32 master weights) — or on the CPU for a dry run.

    bash bench/gpu_check.sh                      # on a machine with a GPU: ≤ 8 minutes
    python bench/gpu_check.py --device cpu --steps 2 --prompts 16 --gen-prompts 8   # a dry run of the same code

1. SFT: ``--steps`` timed steps of the single-token model through TRL's SFTTrainer (the study's own
   ``train.build_trainer``), full fine-tuning (no frozen blocks), padding-free; tokens/s, achieved TFLOP/s and MFU
   against a matmul peak measured on the same device in the same run (bf16 on CUDA, fp32 on CPU).
2. Scoring: p(scheme tokens) at the first response position for ``--prompts`` CoCoNot prompts (``control.score``);
   prompts/s.
3. Generation: lookup equals regeneration. For ``--gen-prompts`` prompts, the ≤2 (+1 free) cached greedy
   continuations, then every threshold of a small sweep assembled by lookup and compared with generating that
   threshold's responses directly: the identical share (fp32 on CPU: 1.0 expected; bf16 batched kernels may differ
   in a few ties, which is what this measures).

Prints one JSON object and writes it to ``reports/bench/gpu_check.json``. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def matmul_peak(device: str, dtype, n: int, repeats: int = 20) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    torch.matmul(a, b)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e12


def sft(opts) -> dict:
    from sft_throughput import measure

    from refusal_tokens import train

    cfg = train.TrainConfig.from_mapping(dict(  # checked like any config: a bad --device is one clear error
        name="gpu-check", scheme="single", model=opts.model, train_file=opts.data, validation_file=opts.data,
        output_dir="build/gpu_check/out", checkpoint_dir="build/gpu_check/ckpt", max_steps=opts.warmup + opts.steps,
        per_device_train_batch_size=opts.batch, max_length=opts.max_length, save_steps=10_000, device=opts.device,
        eval_rows=8, padding_free=True, freeze_layers=0))
    return measure("sft", cfg, opts.steps, opts.warmup)


def scoring_and_generation(opts) -> dict:
    from common import coconot_sample
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from refusal_tokens import control

    dtype = torch.bfloat16 if opts.device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(opts.scored_model, dtype=dtype).to(opts.device)
    tok = AutoTokenizer.from_pretrained(opts.scored_model)
    rows = coconot_sample(opts.prompts)
    convs = [r["conversation"] for r in rows]
    control.score(model, tok, convs[:4], "single")  # warm-up
    if opts.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    scores = control.score(model, tok, convs, "single", batch_size=opts.score_batch)
    if opts.device == "cuda":
        torch.cuda.synchronize()
    scoring_seconds = time.perf_counter() - start

    gen = rows[:opts.gen_prompts]
    ids, prompts = [r["id"] for r in gen], {r["id"]: r["conversation"] for r in gen}
    backend = control.HFBackend(model, tok, batch_size=opts.gen_batch)
    cache = control.GenerationCache(None, {"model": opts.scored_model, "max_new_tokens": opts.max_new_tokens,
                                           "dtype": str(dtype)})
    keys = [(i, t) for i, s in zip(ids, scores) for t in control.needed_first_tokens(s, "single")]
    start = time.perf_counter()
    generated = cache.ensure(backend, prompts, keys, opts.max_new_tokens)
    gen_seconds = time.perf_counter() - start
    p = sorted(control.p_refusal(s, "single") for s in scores[:len(gen)])
    thresholds = sorted({0.0, p[len(p) // 4], p[len(p) // 2], p[3 * len(p) // 4], 1.0})
    same = total = 0
    for t in thresholds:
        chosen = control.decide_all(scores[:len(gen)], "single", control.Setting(f"t{t}", "threshold", t))
        looked_up = control.assemble(ids, chosen, cache.lookup)
        direct = control.HFBackend(model, tok, batch_size=opts.gen_batch, share_prefill=False).continue_from(
            [prompts[i] for i in ids], chosen, opts.max_new_tokens)
        same += sum(a == b for a, b in zip(looked_up, direct))
        total += len(ids)
    return {"scored_prompts": len(rows), "scoring_seconds": scoring_seconds,
            "prompts_per_second": len(rows) / scoring_seconds, "generated_continuations": generated,
            "generation_seconds": gen_seconds, "responses_per_second": generated / gen_seconds,
            "max_new_tokens": opts.max_new_tokens, "thresholds_compared": thresholds,
            "lookup_equals_regeneration": same / total, "compared_responses": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--model", default="models/smollm2-135m/init/single-words", help="SFT starts here")
    parser.add_argument("--scored-model", default="models/smollm2-135m/sft/single_r10")
    parser.add_argument("--data", default="data/processed/mixes/r10/single/train.jsonl")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--prompts", type=int, default=874)
    parser.add_argument("--score-batch", type=int, default=128)
    parser.add_argument("--gen-prompts", type=int, default=128)
    parser.add_argument("--gen-batch", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--out", default=str(HERE.parent / "reports" / "bench" / "gpu_check.json"))
    opts = parser.parse_args()
    if opts.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here (use --device cpu for a dry run)")
    dtype, n = (torch.bfloat16, 8192) if opts.device == "cuda" else (torch.float32, 2048)
    peak = matmul_peak(opts.device, dtype, n)
    result = {"script": "bench/gpu_check.py", "command": " ".join(["python", *sys.argv]),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "device": opts.device,
              "device_name": torch.cuda.get_device_name() if opts.device == "cuda" else "cpu",
              "torch": torch.__version__, "matmul_peak_tflops": peak, "matmul_dtype": str(dtype)}
    run = sft(opts)
    result["sft"] = {**run, "tflops": run["gflops"] / 1e3, "mfu_vs_measured_peak": run["gflops"] / 1e3 / peak}
    result.update(scoring_and_generation(opts))
    print(json.dumps(result, indent=2))
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
