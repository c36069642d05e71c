"""Cost of a K-threshold sweep: naive (one generation per threshold per prompt, as the official code does) vs the
exact sweep (≤ 2 cached generations per prompt, every threshold by lookup), side by side in one run.

    python bench/sweep_cost.py [--model models/smollm2-135m/sft/single_r50] [--prompts 100] [--k 21]

Both ways score the prompts once (one forward each; included in both times), decide each threshold's first token
with the same rule, and generate greedily with the same backend, batch size and max_new_tokens. Prints the
generated-token ratio, the wall-clock ratio and whether every threshold's responses are identical.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    from common import coconot_sample, load_model

    from refusal_tokens import control

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/smollm2-135m/sft/single_r50")
    parser.add_argument("--scheme", default="single")
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--k", type=int, default=21)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    rows = coconot_sample(args.prompts)
    ids, convs = [r["id"] for r in rows], [r["conversation"] for r in rows]
    model, tok = load_model(args.model)
    settings = [control.Setting(f"t={t:g}", "threshold", t) for t in control.threshold_grid(args.k)]
    control.HFBackend(model, tok, batch_size=4).continue_from(convs[:4], [None] * 4, 2)  # warm-up

    start = time.perf_counter()
    scores = control.score(model, tok, convs, args.scheme)
    naive_backend = control.HFBackend(model, tok, batch_size=args.batch_size, share_prefill=False)  # as the official code
    naive = {s.name: naive_backend.continue_from(convs, control.decide_all(scores, args.scheme, s), args.max_new_tokens)
             for s in settings}
    t_naive = time.perf_counter() - start

    start = time.perf_counter()
    scores2 = control.score(model, tok, convs, args.scheme)
    ours_backend = control.HFBackend(model, tok, batch_size=args.batch_size)
    cache = control.GenerationCache()
    keys = [(i, t) for i, s in zip(ids, scores2) for t in control.needed_first_tokens(s, args.scheme)]
    cache.ensure(ours_backend, dict(zip(ids, convs)), keys, args.max_new_tokens)
    ours = {s.name: control.assemble(ids, control.decide_all(scores2, args.scheme, s), cache.lookup) for s in settings}
    t_ours = time.perf_counter() - start

    mismatched = [(name, i) for name in naive for i in range(len(ids)) if naive[name][i] != ours[name][i]]
    print(f"{len(ids)} prompts × K={args.k} thresholds, max_new_tokens {args.max_new_tokens}, batch {args.batch_size}")
    print(f"naive : {len(ids) * args.k:6d} generations  {naive_backend.generated_tokens:7d} tokens  {t_naive:8.1f} s")
    print(f"ours  : {len(cache.entries):6d} generations  {ours_backend.generated_tokens:7d} tokens  {t_ours:8.1f} s")
    print(f"generated-token ratio naive/ours: {naive_backend.generated_tokens / max(ours_backend.generated_tokens, 1):.2f}x")
    print(f"wall-clock ratio naive/ours:      {t_naive / t_ours:.2f}x   (target ≥ 8x at K=21)")
    print(f"responses identical for every threshold: {not mismatched} "
          f"({len(mismatched)} of {len(ids) * args.k} (threshold, prompt) responses differ)")
    if mismatched:
        name, i = mismatched[0]
        print(f"first difference at {name}, prompt {ids[i]}:\n  naive: {naive[name][i]!r}\n  ours:  {ours[name][i]!r}")


if __name__ == "__main__":
    main()
