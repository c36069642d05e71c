"""Generation speed: the study's responses (greedy, 16 new tokens; [refuse] and [respond] forced per prompt, plus the
unforced response where the top token is not a scheme token) generated pair by pair (the reference: every
(prompt, first token) from scratch, as before) and with one prompt forward shared by a prompt's continuations, side by
side in one run, response by response.

    python bench/generation.py [--model models/smollm2-135m/sft/single_r50] [--prompts 96] [--max-new-tokens 16]
                               [--batch-size 32]

Prompts: a stratified sample of CoCoNot original + contrast (the calibration prompts). Settings, each timed on the
same pairs after one warm-up: the reference at ``--batch-size`` sequences per batch; the reference at twice that;
the shared prefill at ``--batch-size`` / 2 distinct prompts (≈ the same number of sequences decoded at once) and at
``--batch-size`` prompts. Every setting's responses are compared with the reference's (fp32: the share identical;
a difference comes from a different batch composition changing float rounding at a near-tie, and is printed).
Writes what it printed to ``reports/bench/generation.json`` (with the command, the date, the CPU). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    from common import coconot_sample, load_model
    from sft_throughput import cpu_info

    from refusal_tokens import control

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/smollm2-135m/sft/single_r50")
    parser.add_argument("--scheme", default="single")
    parser.add_argument("--prompts", type=int, default=96)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32, help="the study's generate.batch_size")
    parser.add_argument("--out", default=str(HERE.parent / "reports" / "bench" / "generation.json"))
    opts = parser.parse_args()
    model, tok = load_model(opts.model)
    convs = [r["conversation"] for r in coconot_sample(opts.prompts)]
    scores = control.score(model, tok, convs, opts.scheme, batch_size=32, max_tokens=1024)
    pairs = [(c, t) for c, s in zip(convs, scores) for t in control.needed_first_tokens(s, opts.scheme)]
    conversations = [c for c, _ in pairs]
    firsts = [None if t == control.FREE else t for _, t in pairs]
    b = opts.batch_size
    settings = {
        f"pair by pair, batch {b} (reference)": dict(share_prefill=False, batch_size=b),
        f"pair by pair, batch {2 * b}": dict(share_prefill=False, batch_size=2 * b),
        f"shared prefill, {max(1, b // 2)} prompts per batch": dict(share_prefill=True, batch_size=max(1, b // 2)),
        f"shared prefill, {b} prompts per batch": dict(share_prefill=True, batch_size=b),
    }
    control.HFBackend(model, tok, batch_size=4).continue_from(conversations[:4], firsts[:4], 4)  # warm-up
    results, reference = [], None
    for name, kwargs in settings.items():
        backend = control.HFBackend(model, tok, **kwargs)
        start = time.perf_counter()
        texts = backend.continue_from(conversations, firsts, opts.max_new_tokens)
        seconds = time.perf_counter() - start
        reference = reference or (seconds, texts)
        same = sum(a == r for a, r in zip(texts, reference[1]))
        results.append({"setting": name, **kwargs, "seconds": round(seconds, 2),
                        "responses_per_s": round(len(texts) / seconds, 2),
                        "new_tokens_per_s": round(backend.generated_tokens / seconds, 1),
                        "speedup_vs_reference": round(reference[0] / seconds, 2),
                        "identical_to_reference": f"{same}/{len(texts)}",
                        "differences": [{"forced": t, "reference": r, "this": a}
                                        for a, r, t in zip(texts, reference[1], firsts) if a != r][:5]})
        print(f"{name:45s} {seconds:7.1f} s  {len(texts) / seconds:5.1f} responses/s  "
              f"×{reference[0] / seconds:4.2f}  identical {same}/{len(texts)}")
    n_free = sum(t is None for t in firsts)
    print(f"{len(convs)} prompts → {len(pairs)} responses ({n_free} unforced), {opts.max_new_tokens} new tokens, fp32")
    record = {"script": "bench/generation.py", "prompts": len(convs), "responses": len(pairs), "unforced": n_free,
              "max_new_tokens": opts.max_new_tokens, "model": opts.model, "results": results,
              "command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              **cpu_info()}
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
