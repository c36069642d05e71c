"""First-token scoring speed: one prompt at a time (the baseline) and batched (length-sorted, left-padded) under a
few batch settings, side by side in one run, against a fp32 GEMM peak measured in the same run.

    python bench/scoring.py [--model models/smollm2-135m/sft/single_r10] [--prompts 256]
                            [--settings 32:1024,64:2048,128:4096]

Prompts: a stratified sample of CoCoNot original + contrast (the calibration prompts). Each setting is
``BATCH:MAX_TOKENS`` (prompts per batch : padded tokens per batch, 0 = no cap; the study's default is
``generate.score_batch_size`` : ``generate.score_max_tokens``). Every setting computes the same probabilities as the
baseline (max abs difference printed). FLOPs count real (non-padding) prompt tokens only: 2 · non-embedding params
per token + attention (2 · 2 · layers · d · ctx/2 per token) + the LM head at the last position (2 · d · vocab per
prompt); padding is computed but not counted, so the share of peak is of *useful* work. Writes what it printed to
``reports/bench/scoring.json`` (with the command, the date, the CPU). Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def forward_flops(model, lengths: list[int]) -> float:
    cfg = model.config
    embed = model.get_input_embeddings().weight.numel()
    body = sum(p.numel() for p in model.parameters()) - embed  # tied head: the embedding counted once, below
    flops = 0.0
    for n in lengths:
        flops += 2 * body * n + 2 * 2 * cfg.num_hidden_layers * cfg.hidden_size * n * (n + 1) / 2
        flops += 2 * cfg.hidden_size * cfg.vocab_size  # LM head, last position only (logits_to_keep=1)
    return flops


def main() -> None:
    from common import coconot_sample, gemm_peak, load_model, provenance, write_record

    from refusal_tokens import control, scoring

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/smollm2-135m/sft/single_r10")
    parser.add_argument("--scheme", default="single")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--settings", default="32:1024,64:2048,128:4096",
                        help="comma-separated BATCH:MAX_TOKENS (padded tokens per batch, 0 = no cap)")
    parser.add_argument("--out", default=str(HERE.parent / "reports" / "bench" / "scoring.json"))
    args = parser.parse_args()
    try:
        settings = [tuple(int(x) for x in s.split(":")) for s in args.settings.split(",")]
        if any(len(s) != 2 or s[0] < 1 or s[1] < 0 for s in settings):
            raise ValueError
    except ValueError:
        parser.error(f"--settings: BATCH:MAX_TOKENS pairs (BATCH ≥ 1, MAX_TOKENS ≥ 0), got {args.settings!r}")
    convs = [r["conversation"] for r in coconot_sample(args.prompts)]
    model, tok = load_model(args.model)
    lengths = [len(x) for x in scoring.chat_prompts(tok, convs)]
    flops = forward_flops(model, lengths)
    peak = gemm_peak()
    control.score(model, tok, convs[:4], args.scheme)  # warm-up

    start = time.perf_counter()
    single = [control.score(model, tok, [c], args.scheme, batch_size=1)[0] for c in convs]
    t_single = time.perf_counter() - start
    results = [{"setting": "one prompt at a time (baseline)", "batch_size": 1, "max_tokens": 0,
                "seconds": round(t_single, 2), "prompts_per_s": round(len(convs) / t_single, 1),
                "gflops": round(flops / t_single / 1e9, 1),
                "speedup_vs_baseline": 1.0, "max_abs_diff_vs_baseline": 0.0, "padded_tokens": sum(lengths)}]
    for batch_size, max_tokens in settings:
        start = time.perf_counter()
        batched = control.score(model, tok, convs, args.scheme, batch_size=batch_size, max_tokens=max_tokens)
        seconds = time.perf_counter() - start
        diff = max(abs(b["p"]["1"][k] - s["p"]["1"][k]) for b, s in zip(batched, single) for k in b["p"]["1"])
        batches = control.length_batches(lengths, batch_size, max_tokens)
        results.append({"setting": f"batched, {batch_size} prompts, ≤{max_tokens or '∞'} padded tokens",
                        "batch_size": batch_size, "max_tokens": max_tokens, "seconds": round(seconds, 2),
                        "prompts_per_s": round(len(convs) / seconds, 1), "gflops": round(flops / seconds / 1e9, 1),
                        "speedup_vs_baseline": round(t_single / seconds, 2), "max_abs_diff_vs_baseline": diff,
                        "padded_tokens": sum(max(lengths[i] for i in b) * len(b) for b in batches)})
    peak_after = gemm_peak()
    for r in results:  # of the higher of the two peaks (the machine's own noise)
        r["share_of_peak"] = round(r["gflops"] / max(peak, peak_after), 3)
    lines = [f"prompts {len(convs)}, tokens {sum(lengths)} ({sum(lengths) / len(convs):.1f} per prompt); fp32 GEMM "
             f"peak (2048³ matmul) {peak:.1f} GFLOP/s before, {peak_after:.1f} after"]
    for r in results:
        lines.append(f"{r['setting']:45s} {r['seconds']:7.2f} s  {r['prompts_per_s']:6.1f} prompts/s  "
                     f"{r['gflops']:6.1f} GFLOP/s = {r['share_of_peak']:4.0%} of peak  ×{r['speedup_vs_baseline']:4.2f}"
                     f"  padded tokens {r['padded_tokens']}  max |Δp| {r['max_abs_diff_vs_baseline']:.1e}")
    best = max(results, key=lambda r: r["share_of_peak"])
    lines.append(f"best: {best['setting']} at {best['share_of_peak']:.0%} of the fp32 peak (goal ≥ 75%)")
    print("\n".join(lines))
    record = {"script": "bench/scoring.py", "prompts": len(convs), "tokens": sum(lengths), "model": args.model,
              "gemm_peak_gflops": [round(peak, 1), round(peak_after, 1)], "results": results, "summary": lines,
              **provenance()}
    write_record(args.out, record)


if __name__ == "__main__":
    main()
