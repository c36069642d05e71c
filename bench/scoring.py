"""First-token scoring speed: batched (length-sorted, left-padded) vs one prompt at a time, side by side in one run,
and the batched run's achieved GFLOP/s against a fp32 GEMM peak measured by this script.

    python bench/scoring.py [--model models/smollm2-135m/sft/single_r50] [--prompts 128] [--batch-size 32]
                            [--max-tokens 1024]

Prompts: a stratified sample of CoCoNot original + contrast (the calibration prompts). Both ways compute the same
probabilities (checked: max abs difference printed). FLOPs count real (non-padding) prompt tokens only:
2 · N_layers-params per token + attention (2 · 2 · layers · d · ctx/2 per token) + the LM head at the last
position (2 · d · vocab per prompt). Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import time


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
    from common import coconot_sample, load_model
    from sft_throughput import gemm_peak

    from refusal_tokens import control, scoring

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/smollm2-135m/sft/single_r50")
    parser.add_argument("--scheme", default="single")
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=1024, help="padded tokens per batch (0: no cap)")
    args = parser.parse_args()
    convs = [r["conversation"] for r in coconot_sample(args.prompts)]
    model, tok = load_model(args.model)
    lengths = [len(x) for x in scoring.chat_prompts(tok, convs)]
    control.score(model, tok, convs[:4], args.scheme)  # warm-up

    start = time.perf_counter()
    batched = control.score(model, tok, convs, args.scheme, batch_size=args.batch_size, max_tokens=args.max_tokens)
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    single = [control.score(model, tok, [c], args.scheme, batch_size=1)[0] for c in convs]
    t_single = time.perf_counter() - start

    diff = max(abs(b["p"]["1"][k] - s["p"]["1"][k]) for b, s in zip(batched, single) for k in b["p"]["1"])
    flops = forward_flops(model, lengths)
    peak = gemm_peak()
    batches = control.length_batches(lengths, args.batch_size, args.max_tokens)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    print(f"prompts {len(convs)}, tokens {sum(lengths)} (padded to {padded} in {len(batches)} batches of ≤ "
          f"{args.batch_size} prompts, ≤ {args.max_tokens or '∞'} padded tokens)")
    print(f"one at a time : {t_single:7.2f} s  {len(convs) / t_single:6.1f} prompts/s  {flops / t_single / 1e9:6.1f} GFLOP/s")
    print(f"batched       : {t_batched:7.2f} s  {len(convs) / t_batched:6.1f} prompts/s  {flops / t_batched / 1e9:6.1f} GFLOP/s")
    print(f"speed-up batched / one at a time: {t_single / t_batched:.2f}x   (target ≥ 5x)")
    print(f"fp32 GEMM peak (2048³, this run): {peak:.1f} GFLOP/s; batched scoring reaches "
          f"{100 * flops / t_batched / 1e9 / peak:.0f}% of it (target ≥ 60%)")
    print(f"max |p batched − p one at a time| = {diff:.2e}")


if __name__ == "__main__":
    main()
