"""Cost of a K-threshold sweep: naive (one generation per threshold per prompt, as the official code does) vs the
exact sweep (≤ 2 cached generations per prompt, every threshold by lookup), side by side in one run.

    python bench/sweep_cost.py [--model models/smollm2-135m/sft/single_r10] [--prompts 100] [--k 21]
                               [--batch-size 64] [--max-tokens 2048] [--naive-batch-size 32]

Both ways score the prompts once (one forward each; included in both times), decide each threshold's first token
with the same rule, and generate greedily with the same backend and max_new_tokens: the naive way pair by pair in
batches of ``--naive-batch-size`` sequences, ours as the study generates (``generate.batch_size`` prompts,
``generate.max_tokens``, the shared prompt forward; read from params.yaml). The wall-clock ratio therefore mixes
the cache (fewer generations) with the study's batching (``bench/generation.py`` separates the batching). Prints
the generated-token ratio, the wall-clock ratio and whether every threshold's responses are identical, and writes
them to ``reports/bench/sweep_cost.json`` (with the command, the date, the CPU). Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    from common import coconot_sample, load_model, provenance, write_record

    from refusal_tokens import control

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/smollm2-135m/sft/single_r10")
    parser.add_argument("--scheme", default="single")
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--k", type=int, default=21)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    study = _generate_params()
    parser.add_argument("--batch-size", type=int, default=study.get("batch_size", 64),
                        help="ours: distinct prompts per batch (default: params.yaml generate.batch_size)")
    parser.add_argument("--max-tokens", type=int, default=study.get("max_tokens", 0),
                        help="ours: padded prompt tokens per batch (default: params.yaml generate.max_tokens)")
    parser.add_argument("--naive-batch-size", type=int, default=32, help="naive: sequences per batch")
    parser.add_argument("--out", default=str(HERE.parent / "reports" / "bench" / "sweep_cost.json"))
    args = parser.parse_args()
    rows = coconot_sample(args.prompts)
    ids, convs = [r["id"] for r in rows], [r["conversation"] for r in rows]
    model, tok = load_model(args.model)
    settings = [control.Setting(f"t={t:g}", "threshold", t) for t in control.threshold_grid(args.k)]
    control.HFBackend(model, tok, batch_size=4).continue_from(convs[:4], [None] * 4, 2)  # warm-up

    start = time.perf_counter()
    scores = control.score(model, tok, convs, args.scheme)
    # pair by pair, as the official code
    naive_backend = control.HFBackend(model, tok, batch_size=args.naive_batch_size, share_prefill=False)
    naive = {s.name: naive_backend.continue_from(convs, control.decide_all(scores, args.scheme, s), args.max_new_tokens)
             for s in settings}
    t_naive = time.perf_counter() - start

    start = time.perf_counter()
    scores2 = control.score(model, tok, convs, args.scheme)
    ours_backend = control.HFBackend(model, tok, batch_size=args.batch_size, max_tokens=args.max_tokens)
    cache = control.GenerationCache()
    keys = [(i, t) for i, s in zip(ids, scores2) for t in control.needed_first_tokens(s, args.scheme)]
    cache.ensure(ours_backend, dict(zip(ids, convs)), keys, args.max_new_tokens)
    ours = {s.name: control.assemble(ids, control.decide_all(scores2, args.scheme, s), cache.lookup) for s in settings}
    t_ours = time.perf_counter() - start

    mismatched = [(name, i) for name in naive for i in range(len(ids)) if naive[name][i] != ours[name][i]]
    lines = [f"{len(ids)} prompts × K={args.k} thresholds, max_new_tokens {args.max_new_tokens}; naive: batch "
             f"{args.naive_batch_size}, pair by pair; ours: {args.batch_size} prompts, ≤{args.max_tokens} padded "
             f"tokens, shared prompt forward",
             f"naive : {len(ids) * args.k:6d} generations  {naive_backend.generated_tokens:7d} tokens  {t_naive:8.1f} s",
             f"ours  : {len(cache.entries):6d} generations  {ours_backend.generated_tokens:7d} tokens  {t_ours:8.1f} s",
             f"generated-token ratio naive/ours: "
             f"{naive_backend.generated_tokens / max(ours_backend.generated_tokens, 1):.2f}x",
             f"wall-clock ratio naive/ours:      {t_naive / t_ours:.2f}x",
             f"responses identical for every threshold: {not mismatched} "
             f"({len(mismatched)} of {len(ids) * args.k} (threshold, prompt) responses differ)"]
    if mismatched:
        name, i = mismatched[0]
        lines.append(f"first difference at {name}, prompt {ids[i]}:\n  naive: {naive[name][i]!r}\n  ours:  "
                     f"{ours[name][i]!r}")
    print("\n".join(lines))
    record = {"script": "bench/sweep_cost.py", "prompts": len(ids), "k": args.k, "model": args.model,
              "max_new_tokens": args.max_new_tokens,
              "naive_setting": {"batch_size": args.naive_batch_size, "share_prefill": False},
              "ours_setting": {"batch_size": args.batch_size, "max_tokens": args.max_tokens, "share_prefill": True},
              "naive": {"generations": len(ids) * args.k, "tokens": naive_backend.generated_tokens,
                        "seconds": round(t_naive, 2)},
              "ours": {"generations": len(cache.entries), "tokens": ours_backend.generated_tokens,
                       "seconds": round(t_ours, 2)},
              "wall_clock_ratio": round(t_naive / t_ours, 2), "differing_responses": len(mismatched),
              "summary": lines, **provenance()}
    write_record(args.out, record)


def _generate_params() -> dict:
    """The study's ``generate`` section of params.yaml (empty when the file is not there)."""
    import yaml

    path = HERE.parent / "params.yaml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("generate", {}) if path.is_file() else {}


if __name__ == "__main__":
    main()
