"""Generation speed: the study's responses (greedy, 16 new tokens; [refuse] and [respond] forced per prompt, plus the
unforced response where the top token is not a scheme token) generated pair by pair (the reference: every
(prompt, first token) from scratch, as before) and with one prompt forward shared by a prompt's continuations, side by
side in one run, response by response.

    python bench/generation.py [--model models/smollm2-135m/sft/single_r10] [--prompts 96] [--max-new-tokens 16]
                               [--batch-size 32] [--max-tokens 2048] [--rounds 1] [--settings all]

Prompts: a stratified sample of CoCoNot original + contrast (the calibration prompts). Settings, each timed on the
same pairs after one warm-up: the reference at ``--batch-size`` sequences per batch; pair by pair at 4 × that with
at most 2 × ``--max-tokens`` padded tokens (as wide as the default: what larger batches alone give); the
shared prefill at ``--batch-size`` / 2 distinct prompts (≈ the same number of sequences decoded at once), at
``--batch-size`` prompts, at twice that with at most ``--max-tokens`` padded prompt tokens per batch (long
prompts in smaller batches: the study's default), at four times that with twice the tokens (wider decode steps),
the default with its forced and unforced continuations decoded in one ``generate`` call per kind (the previous
default; the default makes one per batch), that with its key/value cache preallocated (transformers'
``StaticCache``: no concatenation per decode step), and that with its one-token decode step compiled by
``torch.compile`` (inductor's CPU kernels; transformers' ``generate`` compiles the step when the cache is static:
the compile time falls in the setting's first round, and every new batch shape may recompile), all defined here;
and, when the ``ctranslate2`` package is installed, CTranslate2's fp32 generator on the
same pairs (a C++ inference engine; not a dependency of the study). Every setting's responses are compared with the
reference's (fp32: the share identical; a difference comes from a different batch composition changing float
rounding at a near-tie, and is printed). Each setting's useful work is counted in model FLOPs (prompt positions it
must run, forced and new tokens; padding not counted) against the fp32 GEMM peak measured in the same run: the share
of peak says how much faster the same work could still run, and the prefill the sharing removes bounds what sharing
alone can save.
``--rounds N`` runs the settings N times, their order reversed every other round, and takes each speed-up against the
reference of its own round, so that a machine whose speed drifts during the bench favours no setting.
``--settings`` runs a subset, named by the keys of ``setting_table`` (the reference always among them).
Writes what it printed to ``reports/bench/generation.json`` (with the command, the date, the CPU). Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def setting_table(b: int, max_tokens: int) -> dict[str, tuple[str, dict]]:
    """``--settings`` key → (printed name, backend arguments), in the bench's order: the reference first; "default"
    is the study's. ``b``: the reference's sequences per batch; ``max_tokens``: padded prompt tokens per batch of the
    default (see the module docstring)."""
    default = dict(share_prefill=True, batch_size=2 * b, max_tokens=max_tokens)
    name = f"shared prefill, {2 * b} prompts, ≤{max_tokens} padded tokens"
    return {
        "reference": (f"pair by pair, batch {b} (reference)", dict(share_prefill=False, batch_size=b)),
        "pairs_wide": (f"pair by pair, batch {4 * b}, ≤{2 * max_tokens} padded tokens",  # ≈ the default's width
                       dict(share_prefill=False, batch_size=4 * b, max_tokens=2 * max_tokens)),
        "shared_half": (f"shared prefill, {b // 2} prompts per batch", dict(share_prefill=True, batch_size=b // 2)),
        "shared": (f"shared prefill, {b} prompts per batch", dict(share_prefill=True, batch_size=b)),
        "default": (name, default),
        "shared_wide": (f"shared prefill, {4 * b} prompts, ≤{2 * max_tokens} padded tokens",  # wider decode steps
                        dict(share_prefill=True, batch_size=4 * b, max_tokens=2 * max_tokens)),
        # the default with one generate call per kind of continuation (the previous default), that with its
        # key/value cache preallocated (no per-step concatenation), and that with its decode step compiled
        "per_kind": (f"{name}, one generate call per kind", {**default, "candidate": "per kind"}),
        "static": (f"{name}, per kind, static cache", {**default, "candidate": "static cache"}),
        "static_compiled": (f"{name}, per kind, static cache, compiled decode step",
                            {**default, "candidate": "static cache, compiled decode"}),
    }


def main() -> None:
    import statistics

    from torch._dynamo.utils import counters

    from common import coconot_sample, counterbalanced, gemm_peak, load_model, provenance, write_record

    from refusal_tokens import control
    from refusal_tokens.scoring import chat_prompts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/smollm2-135m/sft/single_r10")
    parser.add_argument("--scheme", default="single")
    parser.add_argument("--prompts", type=int, default=96)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32, help="the reference's sequences per batch")
    parser.add_argument("--max-tokens", type=int, default=2048,
                        help="padded prompt tokens per batch for the largest shared-prefill setting")
    parser.add_argument("--rounds", type=int, default=1, help="run the settings this many times, their order "
                        "reversed every other round; each speed-up is taken against the reference of its own round")
    keys = list(setting_table(2, 0))
    parser.add_argument("--settings", default="all", help="'all', or a comma-separated subset of "
                        f"{', '.join(keys)} (reference included)")
    parser.add_argument("--out", default=str(HERE.parent / "reports" / "bench" / "generation.json"))
    opts = parser.parse_args()
    if opts.rounds < 1:
        parser.error("--rounds must be at least 1")
    chosen = keys if opts.settings == "all" else opts.settings.split(",")
    if any(k not in keys for k in chosen) or "reference" not in chosen:
        parser.error(f"--settings takes 'all' or a comma-separated list of {', '.join(keys)} that includes "
                     f"reference (every speed-up and identity check is against it); got {opts.settings!r}")
    b = opts.batch_size
    if b < 2:
        parser.error("--batch-size must be at least 2 (the shared settings use half of it)")
    model, tok = load_model(opts.model)
    convs = [r["conversation"] for r in coconot_sample(opts.prompts)]
    scores = control.score(model, tok, convs, opts.scheme, batch_size=32, max_tokens=1024)
    pairs = [(c, t) for c, s in zip(convs, scores) for t in control.needed_first_tokens(s, opts.scheme)]
    conversations = [c for c, _ in pairs]
    firsts = [None if t == control.FREE else t for _, t in pairs]
    # useful work in token forwards (padding and rows that already stopped are not counted): every prompt and
    # forced-token position a setting runs (HFBackend.prompt_tokens: with the shared forward a prompt but its last
    # token once, then its last token again per continuation) and each new token up to its end of turn
    lengths = [len(p) for p in chat_prompts(tok, convs)]
    table = setting_table(b, opts.max_tokens)
    settings = {label: kwargs for key, (label, kwargs) in table.items() if key in chosen}
    candidates = _candidates()
    config = model.config
    non_embedding = sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    head = config.vocab_size * config.hidden_size  # the LM head (tied to the embedding): counted per new token
    peak = gemm_peak()
    control.HFBackend(model, tok, batch_size=4).continue_from(conversations[:4], firsts[:4], 4)  # warm-up
    results, runs = [], {}
    for k, name in counterbalanced(list(settings), opts.rounds):
        kwargs = dict(settings[name])
        backend = candidates.get(kwargs.pop("candidate", None), control.HFBackend)(model, tok, **kwargs)
        graphs = counters["stats"]["unique_graphs"]
        start = time.perf_counter()
        texts = backend.continue_from(conversations, firsts, opts.max_new_tokens)
        runs[k, name] = (time.perf_counter() - start, texts, backend,
                         counters["stats"]["unique_graphs"] - graphs)  # graphs torch.compile built in this run
    first = next(iter(settings))  # the reference setting; round 1's run of it gives the texts everything is compared to
    reference = runs[0, first][:2]
    for k in range(opts.rounds):  # in settings order, each against its own round's reference time
        if opts.rounds > 1:
            print(f"round {k + 1} ({'settings in this order' if k % 2 == 0 else 'run in the reverse order'})")
        for name, kwargs in settings.items():
            seconds, texts, backend, graphs = runs[k, name]
            flops = 2 * non_embedding * (backend.prompt_tokens + backend.generated_tokens) + \
                2 * head * backend.generated_tokens
            results.append({"round": k + 1, **_result(name, kwargs, seconds, texts, (runs[k, first][0], reference[1]),
                                                      firsts, backend.generated_tokens, backend.prompt_tokens, flops,
                                                      peak), "compiled_graphs": graphs})
            if graphs:
                print(f"{'':50s} (torch.compile built {graphs} graph(s) during this run)")
    try:
        import ctranslate2  # noqa: F401  (optional: pip install ctranslate2)
    except ImportError:
        print("CTranslate2 not installed: its setting is skipped (pip install ctranslate2)")
    else:
        results.append(_ctranslate2(opts, tok, conversations, firsts, reference, peak, non_embedding, head,
                                    results[0]["prompt_positions"]))  # it runs every pair whole, as the reference
    n_free = sum(t is None for t in firsts)
    pairs_work = results[0]["prompt_positions"]
    shared_work = next((r["prompt_positions"] for r in results if r["share_prefill"]), None)
    lines = [f"{len(convs)} prompts ({sum(lengths) / len(convs):.1f} tokens on average) → {len(pairs)} "
             f"responses ({n_free} unforced), ≤{opts.max_new_tokens} new tokens, fp32; GEMM peak {peak:.0f} GFLOP/s"]
    if shared_work:
        lines.append(f"the shared prompt forward runs {shared_work} prompt positions instead of {pairs_work} "
                     f"({1 - shared_work / pairs_work:.0%} fewer; prefill alone could run "
                     f"{pairs_work / shared_work:.2f}× faster)")
    if opts.rounds > 1:
        for name in settings:
            ups = [r["speedup_vs_reference"] for r in results if r["setting"] == name]
            lines.append(f"{name}: ×" + ", ×".join(f"{u:.2f}" for u in ups) + f" by round; median ×"
                         f"{statistics.median(ups):.2f}")
    print("\n".join(lines))
    record = {"script": "bench/generation.py", "rounds": opts.rounds, "prompts": len(convs), "responses": len(pairs),
              "unforced": n_free,
              "max_new_tokens": opts.max_new_tokens, "model": opts.model, "gemm_peak_gflops": round(peak, 1),
              "flops_counted": "2 × non-embedding parameters per prompt position run and per new token, plus "
                               "2 × vocab × hidden (the LM head) per new token; attention and padding not counted",
              "results": results, "summary": lines, **provenance()}
    write_record(opts.out, record)


def _candidates() -> dict:
    """Variants of the default ``control.HFBackend`` (one shared prompt forward per batch, then ONE ``generate`` call
    for its forced and unforced continuations), measured against it here; each reuses its prefill and continue steps
    and changes what follows the forward:

    - ``per kind``: the previous default: one ``generate`` call per kind of continuation (forced, unforced), each
      from its own copy of the cache;
    - ``static cache``: as ``per kind``, but the forward fills a preallocated key/value cache (transformers'
      ``StaticCache``): every decode step writes its keys in place instead of concatenating the cache, and attends
      over the whole preallocated length, masked.
    """
    import copy

    from transformers import CompileConfig, StaticCache

    from refusal_tokens import control

    class PerKindBackend(control.HFBackend):
        def _shared(self, groups, prompts, firsts, max_new_tokens, texts):
            self._per_kind(groups, prompts, firsts, max_new_tokens, texts, *self._prefill(groups, prompts))

        def _per_kind(self, groups, prompts, firsts, max_new_tokens, texts, ids, mask, cache):
            kinds = [kind for kind in (True, False) if any((firsts[i] is not None) == kind for g in groups for i in g)]
            for n, kind in enumerate(kinds):
                own = cache if n == len(kinds) - 1 else copy.deepcopy(cache)  # the last kind consumes the original
                self._continue(groups, prompts, firsts, {kind}, own, ids, mask, max_new_tokens, texts)

    class StaticCacheBackend(PerKindBackend):
        def _shared(self, groups, prompts, firsts, max_new_tokens, texts):
            width = max(len(prompts[g[0]]) for g in groups) - 1
            # the prompt but its last token, then ≤ 2 tail positions (last token, forced token) and the new tokens
            static = StaticCache(config=self.model.config, max_cache_len=width + 2 + max_new_tokens)
            self._per_kind(groups, prompts, firsts, max_new_tokens, texts, *self._prefill(groups, prompts, static))

    class CompiledDecodeBackend(StaticCacheBackend):
        def _generate(self, rows, sequences, cache, prefix, max_new_tokens, texts):
            # transformers' generate compiles the one-token decode step when the cache is static (StaticCache) and
            # the compile config allows this device; its tail forward (≤ 2 positions) and our prefill stay eager.
            # The compiled call is kept on the model, so later batches reuse it (or recompile for a new shape).
            config = CompileConfig(mode="default")
            config._compile_all_devices = True
            before = getattr(self.model.generation_config, "compile_config", None)
            self.model.generation_config.compile_config = config
            try:
                super()._generate(rows, sequences, cache, prefix, max_new_tokens, texts)
            finally:
                self.model.generation_config.compile_config = before

    return {"per kind": PerKindBackend, "static cache": StaticCacheBackend,
            "static cache, compiled decode": CompiledDecodeBackend}


def _result(name, kwargs, seconds, texts, reference, firsts, new_tokens, prompt_positions, flops, peak) -> dict:
    same = sum(a == r for a, r in zip(texts, reference[1]))
    gflops = flops / seconds / 1e9
    row = {"setting": name, **kwargs, "seconds": round(seconds, 2), "responses_per_s": round(len(texts) / seconds, 2),
           "new_tokens_per_s": round(new_tokens / seconds, 1), "new_tokens": new_tokens,
           "prompt_positions": prompt_positions, "gflops": round(gflops, 1),
           "share_of_peak": round(gflops / peak, 3), "speedup_vs_reference": round(reference[0] / seconds, 2),
           "identical_to_reference": f"{same}/{len(texts)}",
           "differences": [{"forced": t, "reference": r, "this": a}
                           for a, r, t in zip(texts, reference[1], firsts) if a != r][:5]}
    print(f"{name:50s} {seconds:7.1f} s  {len(texts) / seconds:5.1f} responses/s  {gflops:5.0f} GFLOP/s "
          f"= {gflops / peak:4.0%} of peak  ×{reference[0] / seconds:4.2f}  identical {same}/{len(texts)}")
    return row


def _ctranslate2(opts, tok, conversations, firsts, reference, peak, non_embedding, head, prefill) -> dict:
    """The same pairs through CTranslate2 (a C++ inference engine, fp32, converted from the model folder)."""
    import tempfile

    import ctranslate2
    import torch
    from ctranslate2.converters import TransformersConverter

    from refusal_tokens.scoring import chat_prompts, end_of_turn_ids

    vocab, stops = tok.get_vocab(), end_of_turn_ids(tok)
    sequences = [p + ([] if f is None else [vocab[f]]) for p, f in zip(chat_prompts(tok, conversations), firsts)]
    with tempfile.TemporaryDirectory() as folder:
        TransformersConverter(opts.model).convert(folder, force=True)
        generator = ctranslate2.Generator(folder, device="cpu", compute_type="float32", inter_threads=1,
                                          intra_threads=torch.get_num_threads())
        tokens = [tok.convert_ids_to_tokens(s) for s in sequences]
        ends = tok.convert_ids_to_tokens(list(stops))
        kwargs = dict(max_length=opts.max_new_tokens, sampling_topk=1, include_prompt_in_result=False, end_token=ends,
                      return_end_token=True)  # counted like the HF backend's: up to and including the end
        generator.generate_batch(tokens[:4], max_batch_size=4, **(kwargs | {"max_length": 4}))  # warm-up
        start = time.perf_counter()
        results = generator.generate_batch(tokens, max_batch_size=opts.batch_size, **kwargs)
        seconds = time.perf_counter() - start
    texts, new_tokens = [], 0
    for r in results:
        ids = r.sequences_ids[0]
        end = next((k for k, t in enumerate(ids) if t in stops), None)
        new_tokens += len(ids) if end is None else end + 1
        texts.append(tok.decode(ids if end is None else ids[:end], skip_special_tokens=False))
    flops = 2 * non_embedding * (prefill + new_tokens) + 2 * head * new_tokens
    return _result(f"CTranslate2 {ctranslate2.__version__} fp32, batch {opts.batch_size}",
                   {"share_prefill": False, "batch_size": opts.batch_size}, seconds, texts, reference, firsts,
                   new_tokens, prefill, flops, peak)


if __name__ == "__main__":
    main()
