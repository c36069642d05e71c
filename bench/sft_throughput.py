"""SFT throughput on this machine: training settings side by side in one run, through TRL's SFTTrainer.

    python bench/sft_throughput.py [--model models/smollm2-135m/init/single-words] [--steps 6] [--warmup 2]
                                   [--settings freeze15_before,freeze15] [--with-trl-defaults] [--profile freeze15]
    python bench/sft_throughput.py --alternate 3 --settings freeze15_before,freeze15 --steps 20 --warmup 3

Every setting sees the same model, data (the r10 mix, single scheme, rows ≤ max_length), seed and batch of 8, and
trains ``warmup + steps`` steps; the first ``warmup`` are not timed. ``--profile SETTING`` runs that setting once
more under ``torch.profiler`` (not timed) and records where its timed steps' CPU time goes. Settings (our CPU
default is ``freeze15``):

- ``padded``: fp32, no gradient checkpointing, rows padded to the longest in the batch (the earlier default);
- ``padding_free``: the same rows concatenated with restarting position ids (TRL ``padding_free=True``);
- ``freeze15`` / ``freeze20``: padding-free, and the bottom 15 / 20 of 30 blocks frozen (backward stops there);
- ``freeze15_before``: ``freeze15`` with ``exact_cpu_speedups: false`` (``refusal_tokens.cpu``: glibc keeping freed
  memory, and the LM head's in-place gradient tile, both bit-identical): the default as it was before them. Keeping
  freed memory is process-wide and cannot be undone, so settings with ``exact_cpu_speedups: false`` run first
  whatever their place in ``--settings``; their loss must equal ``freeze15``'s to the last digit;
- ``freeze15_fullhead``: ``freeze15`` with TRL's own CPU behaviour for the fused LM head, which projects every
  position, prompt tokens included (``completion_head_only: false``; every other setting projects only the
  completion positions, as TRL does on CUDA);
- ``freeze15_bf16``: ``freeze15`` (the default) with bf16 autocast (fp32 master weights): what ``bf16: auto``
  picks where it pays;
- ``freeze15_compile``: ``freeze15`` with the model compiled in place by ``torch.compile`` (inductor, CPU C++
  kernels; ``nn.Module.compile``, as TrainingArguments ``torch_compile`` would). Padding-free steps differ in
  length, so the first steps compile (and may recompile for a dynamic shape): give it enough ``--warmup``
  steps; ``seconds_with_warmup`` (each setting's whole ``train()``) shows what compiling costs. (AdamW is
  already the fused ``adamw_torch_fused``, transformers' default, in every setting.)
- ``freeze15_cached`` (timing only): ``freeze15`` with the 15 frozen blocks replaced by pass-throughs, which is
  what a step costs when their output comes from a cache: the ceiling of caching the frozen blocks (its loss is
  meaningless). The bench also times one no-grad forward of the embeddings and frozen blocks over the train split's
  rows (what building such a cache costs) and prints what the cache would save over a run of ``--run-steps``
  steps (the pipeline's ``train.common.max_steps``), counting the passes over the train split that run makes;
- ``freeze15_nodw`` (timing only): ``freeze15`` with the top blocks' weights frozen too, while backward still runs
  through them for the activations' gradients: what a step costs with adapters (LoRA) on the top blocks, less the
  adapters' own small matmuls: the ceiling of that lever (its loss is meaningless);
- ``trl_defaults`` (``--with-trl-defaults``): TRL's ``SFTConfig`` defaults, bf16 + gradient checkpointing and its
  every-position CPU head, plus ``use_cpu`` (very slow on AVX2-only CPUs).

Throughput counts real (non-padding) tokens. Achieved GFLOP/s use the *work the step needs*: forward 2·N per
token and backward 4·N for the trainable share of the blocks (N = non-embedding parameters), plus attention, and
the LM head's 2·d·vocab forward and 4·d·vocab backward at completion positions only (the ``fullhead`` setting
does more, which counts against it). The peak is a fp32 2048³ matmul measured in the same run (before and after);
a bf16 setting's share is of a bf16 2048³ matmul peak, measured once in the run (before). The loss after the timed
steps is printed for each setting: padding must not change it (same rows, same order); freezing does. Writes what
it printed to ``reports/bench/sft_throughput.json`` with the CPU model, its flags and torch's thread count. Asserts
nothing.

In one process the settings run one after the other, so a machine whose speed drifts (a shared host) favours the
later ones, and ``exact_cpu_speedups: false`` always runs first. ``--alternate N`` removes both: every setting runs
N times, each in a fresh process (it measures its own peak), in counterbalanced order (A B, B A, A B, …), and the
ratio to the first setting is taken within each round, between neighbouring processes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import counterbalanced  # noqa: E402  (bench/ on the path first)


def flops_per_step(model, tokens: int, completion_tokens: int, rows: int, trainable_block_share: float) -> float:
    cfg = model.config
    embed = model.get_input_embeddings().weight.numel()
    body = sum(p.numel() for p in model.parameters()) - embed
    seq = tokens / max(rows, 1)
    attention = 2 * 2 * cfg.num_hidden_layers * cfg.hidden_size * seq / 2  # QKᵀ + AV per token, causal half
    blocks = (2 * body + attention) * tokens
    head = 2 * cfg.hidden_size * cfg.vocab_size * completion_tokens
    return blocks + head + 2 * blocks * trainable_block_share + 2 * head  # forward, blocks' and head's backward


MATMULS = ("aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm")
HEAD = ("ChunkedLogProbFunction", "ChunkedLogProbFunctionBackward")  # TRL's fused LM head, forward and backward


def time_shares(profiler) -> dict:
    """Where a profiled step's CPU time goes: exclusive (self) time of matmuls, attention kernels, the fused AdamW
    and everything else, as shares of the total; and TRL's LM head inclusive (its own matmuls and tile ops)."""
    events = profiler.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMULS)
    attention = sum(e.self_cpu_time_total for e in events if "scaled_dot_product" in e.key)
    adamw = sum(e.self_cpu_time_total for e in events if e.key == "aten::_fused_adamw_")
    head = sum(e.cpu_time_total for e in events if e.key in HEAD)
    return {"matmuls": matmul / total, "attention": attention / total, "adamw": adamw / total,
            "other": (total - matmul - attention - adamw) / total, "lm_head_inclusive": head / total}


def measure(label: str, cfg, steps: int, warmup: int, compiled: bool = False, profile: bool = False,
            skip: bool = False, no_dw: bool = False, lora: tuple[int, float] | None = None) -> dict:
    from transformers import TrainerCallback

    from refusal_tokens import train

    marks: list[float] = []
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if profile else None

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == warmup:
                marks.append(time.perf_counter())
                if profiler:
                    profiler.start()

        def on_step_end(self, a, state, control, **kw):
            if state.global_step == warmup + steps:
                marks.append(time.perf_counter())
                if profiler:
                    profiler.stop()

    prepared = train.build_trainer(cfg, callbacks=[Clock()], lora=lora)
    trainer = prepared.trainer
    trainer.args.save_strategy = "no"
    if skip:
        skip_frozen(trainer.model, cfg.freeze_layers)
    if no_dw:
        weights_without_gradients(trainer.model, cfg.freeze_layers)
    if compiled:  # in place (nn.Module.compile): the Trainer, its optimizer and TRL's loss see the same module
        trainer.model.compile()
    started = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - started  # warm-up steps included: what compiling costs shows here
    history = trainer.state.log_history
    tokens = {h["step"]: h["num_tokens"] for h in history if "num_tokens" in h}
    timed_tokens = tokens[warmup + steps] - tokens.get(warmup, 0)
    seconds = marks[1] - marks[0]
    rows = steps * cfg.per_device_train_batch_size
    data = trainer.train_dataset
    share = sum(sum(x != -100 for x in lab) for lab in data["labels"]) / sum(len(i) for i in data["input_ids"])
    completion = timed_tokens * share  # the positions the loss needs the head at
    layers = len(trainer.model.get_decoder().layers)
    flops = flops_per_step(trainer.model, timed_tokens, completion, rows, 1 - cfg.freeze_layers / layers)
    losses = [h["loss"] for h in history if "loss" in h]
    if profiler:  # timings under the profiler are not comparable: only where the time goes is kept
        return {"setting": label, "profiled_steps": steps, "time_shares": time_shares(profiler)}
    return {"setting": label, "padding_free": cfg.padding_free, "freeze_layers": cfg.freeze_layers,
            "completion_head_only": cfg.completion_head_only, "exact_cpu_speedups": cfg.exact_cpu_speedups,
            "bf16": bool(trainer.args.bf16), "torch_compile": compiled,
            "gradient_checkpointing": bool(getattr(trainer.args, "activation_checkpointing", False)
                                           or trainer.args.gradient_checkpointing),
            "timed_steps": steps, "tokens": timed_tokens, "seconds": seconds,
            "seconds_with_warmup": total,  # train() from start to end, evaluation and the first (compiling) steps too
            "tokens_per_second": timed_tokens / seconds, "gflops": flops / seconds / 1e9,
            "loss_last_step": losses[-1] if losses else None, "skip_frozen": skip, "no_weight_gradients": no_dw,
            "lora": list(lora) if lora else None,
            "_dataset": trainer.train_dataset}


SETTINGS = {
    "padded": {"padding_free": False, "freeze_layers": 0},
    "padding_free": {"padding_free": True, "freeze_layers": 0},
    "freeze15_before": {"padding_free": True, "freeze_layers": 15, "exact_cpu_speedups": False},  # the default
                                                                                                   # before them
    "freeze15": {"padding_free": True, "freeze_layers": 15},
    "freeze20": {"padding_free": True, "freeze_layers": 20},
    "freeze15_fullhead": {"padding_free": True, "freeze_layers": 15, "completion_head_only": False},  # TRL on CPU
    "freeze15_bf16": {"padding_free": True, "freeze_layers": 15, "bf16": True},  # what bf16: auto picks where it pays
    "freeze15_compile": {"padding_free": True, "freeze_layers": 15, "compile": True},  # torch.compile (inductor)
    "freeze15_cached": {"padding_free": True, "freeze_layers": 15, "skip_frozen": True},  # timing only: the ceiling
                                                                                          # of a frozen-block cache
    "freeze15_nodw": {"padding_free": True, "freeze_layers": 15, "no_dw": True},  # timing only: adapters' ceiling
    # LoRA rank 16 (alpha 32) on the 15 trained blocks, embedding / LM head in full (bench/dev_selection.py --lora);
    # its GFLOP/s count the weight gradients it skips, as freeze15_nodw's do: compare its tokens/s, not its % of peak
    "freeze15_lora16": {"padding_free": True, "freeze_layers": 15, "lora": (16, 32.0)},
}


def weights_without_gradients(model, k: int) -> None:
    """Freeze the blocks above ``k`` too, but let the hidden state entering block ``k`` require a gradient, so that
    backward still runs through those blocks for the activations (as it would to reach adapters) but computes no
    weight gradients for them."""
    layers = model.get_decoder().layers
    for layer in layers[k:]:
        for parameter in layer.parameters():
            parameter.requires_grad_(False)

    def needs_grad(module, args, kwargs):
        if args:
            return (args[0].detach().requires_grad_(), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"].detach().requires_grad_()}

    layers[k].register_forward_pre_hook(needs_grad, with_kwargs=True)


class PassThrough(torch.nn.Module):
    """A decoder block that returns its input: where a cache would hand over the frozen blocks' output."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


def skip_frozen(model, k: int) -> None:
    layers = model.get_decoder().layers
    for i in range(k):
        layers[i] = PassThrough()


def cache_build_cost(model_path: str, dataset, k: int, rows: int, batch: int) -> dict:
    """Time a no-grad forward of the embeddings and the bottom ``k`` blocks over the first ``rows`` tokenised
    train rows, packed ``batch`` rows at a time with restarting position ids, as training packs them: the cost of
    building a frozen-block cache, per token."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    decoder = model.get_decoder()
    decoder.layers = decoder.layers[:k]
    ids = dataset["input_ids"][:rows]
    started = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(ids), batch):
            chunk = ids[i:i + batch]
            flat = torch.tensor([t for row in chunk for t in row]).unsqueeze(0)
            positions = torch.tensor([p for row in chunk for p in range(len(row))]).unsqueeze(0)
            decoder(input_ids=flat, position_ids=positions)
    seconds = time.perf_counter() - started
    tokens = sum(len(r) for r in ids)
    return {"rows": len(ids), "tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds,
            "train_rows": len(dataset), "train_tokens": sum(len(r) for r in dataset["input_ids"])}


def paired_ratios(runs: Sequence[dict], names: Sequence[str]) -> dict[str, list[float]]:
    """Per setting after the first, its tokens/s over the first setting's, round by round (``runs``: one dict per
    process with ``round``, ``setting`` and ``tokens_per_second``)."""
    rate = {(r["round"], r["setting"]): r["tokens_per_second"] for r in runs}
    rounds = sorted({r["round"] for r in runs})
    return {name: [rate[k, name] / rate[k, names[0]] for k in rounds] for name in names[1:]}


def alternate(opts, names: Sequence[str]) -> None:
    """``--alternate N``: every setting N times, each in a fresh process (nothing process-wide carries over), in
    counterbalanced order; the ratio to the first setting is taken within each round (neighbouring processes)."""
    import json
    import statistics
    import subprocess
    import tempfile

    from common import provenance, write_record

    runs, lines = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, name in counterbalanced(names, opts.alternate):
            out = Path(tmp) / f"{k}-{name}.json"
            subprocess.run([sys.executable, __file__, "--settings", name, "--steps", str(opts.steps), "--warmup",
                            str(opts.warmup), "--model", opts.model, "--data", opts.data, "--batch", str(opts.batch),
                            "--max-length", str(opts.max_length), "--out", str(out)], check=True)
            child = json.loads(out.read_text())
            run = {**child["runs"][0], "round": k, "gemm_peak_gflops": child["gemm_peak_gflops"]}
            runs.append(run)
            lines.append(f"round {k + 1}  {name:16s} {run['tokens_per_second']:7.1f} tokens/s  "
                         f"{run['share_of_peak']:5.1%} of its process's fp32 peak "
                         f"({max(run['gemm_peak_gflops']):.0f} GFLOP/s)  loss after step "
                         f"{opts.warmup + opts.steps}: {run['loss_last_step']:.3f}")
    ratios = paired_ratios(runs, names)
    for name, values in ratios.items():
        lines.append(f"{name} vs {names[0]}, round by round: " + ", ".join(f"{v:.2f}×" for v in values)
                     + f"; median {statistics.median(values):.2f}×")
    print("\n".join(lines))
    write_record(opts.out, {"script": "bench/sft_throughput.py", **provenance(), "alternate": opts.alternate,
                            "order": [f"{k + 1}:{n}" for k, n in counterbalanced(names, opts.alternate)],
                            "printed": lines, "runs": runs, "ratios": ratios})


def main() -> None:
    from common import gemm_peak, provenance, write_record

    from refusal_tokens import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/smollm2-135m/init/single-words")
    parser.add_argument("--data", default="data/processed/mixes/r10/single/train.jsonl")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--settings", default="freeze15_before,freeze15")
    parser.add_argument("--with-trl-defaults", action="store_true", help="also TRL's SFTConfig defaults (slow)")
    parser.add_argument("--profile", default="", help="also profile this setting's timed steps (torch.profiler, "
                        "one more run, not timed): where the time goes")
    parser.add_argument("--run-steps", type=int, default=0, help="steps of the run the cache ceiling is projected "
                        "onto (0: params.yaml's train.common.max_steps)")
    parser.add_argument("--cache-rows", type=int, default=256, help="train rows the cache-building forward is timed on")
    parser.add_argument("--alternate", type=int, default=0, help="run every setting this many times, each in its "
                        "own process, in counterbalanced order (A B, B A, …); ratios taken round by round")
    parser.add_argument("--out", default=str(HERE.parent / "reports" / "bench" / "sft_throughput.json"))
    opts = parser.parse_args()
    for name in [*opts.settings.split(","), *([opts.profile] if opts.profile else [])]:
        if name not in SETTINGS:
            parser.error(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")
    if opts.alternate:
        if opts.alternate < 0 or opts.profile or opts.with_trl_defaults or "freeze15_cached" in opts.settings:
            parser.error("--alternate N (N ≥ 1) times plain settings: not with --profile, --with-trl-defaults "
                         "or freeze15_cached (its cache cost needs freeze15 in the same process)")
        return alternate(opts, opts.settings.split(","))

    def config(name: str, **extra) -> "train.TrainConfig":
        return train.TrainConfig.from_mapping(dict(
            name=f"bench-{name}", scheme="single", model=opts.model, train_file=opts.data, validation_file=opts.data,
            output_dir=f"build/bench/{name}/out", checkpoint_dir=f"build/bench/{name}/ckpt",
            max_steps=opts.warmup + opts.steps, per_device_train_batch_size=opts.batch, max_length=opts.max_length,
            save_steps=10_000, device="cpu", eval_rows=8, **extra))

    peak = gemm_peak()
    names = opts.settings.split(",")
    bf16_peak = gemm_peak(dtype=torch.bfloat16) if any(SETTINGS[n].get("bf16") for n in names) or \
        opts.with_trl_defaults else None
    probe = train.cpu_bf16_pays()

    def run(name: str, profile: bool = False) -> dict:
        setting = {k: v for k, v in SETTINGS[name].items() if k not in ("compile", "skip_frozen", "no_dw", "lora")}
        return measure(name, config(name, **setting), opts.steps, opts.warmup,
                       compiled=SETTINGS[name].get("compile", False), profile=profile,
                       skip=SETTINGS[name].get("skip_frozen", False), no_dw=SETTINGS[name].get("no_dw", False),
                       lora=SETTINGS[name].get("lora"))

    # speed-ups off first: what they do to the allocator stays for the rest of the process
    order = sorted(names, key=lambda n: SETTINGS[n].get("exact_cpu_speedups", True))
    results = [run(name) for name in order]
    cache = None
    if "freeze15_cached" in names and "freeze15" in names:
        import yaml

        run_steps = opts.run_steps or yaml.safe_load((HERE.parent / "params.yaml").read_text())["train"]["common"][
            "max_steps"]
        by = {r["setting"]: r for r in results}
        frozen = SETTINGS["freeze15_cached"]["freeze_layers"]
        cost = cache_build_cost(opts.model, by["freeze15"]["_dataset"], frozen, opts.cache_rows, opts.batch)
        step, cached_step = (by[n]["seconds"] / opts.steps for n in ("freeze15", "freeze15_cached"))
        build = cost["train_tokens"] / cost["tokens_per_second"]  # one pass over the train split, at the timed rate
        passes = run_steps * opts.batch / cost["train_rows"]
        cache = {**cost, "frozen_blocks": frozen, "run_steps": run_steps, "passes": passes, "step_seconds": step,
                 "cached_step_seconds": cached_step, "build_seconds": build,
                 "run_seconds": run_steps * step, "cached_run_seconds": run_steps * cached_step + build}
    for r in results:
        r.pop("_dataset", None)
    if opts.with_trl_defaults:
        trl_defaults = config("trl_defaults", bf16=True, gradient_checkpointing=True, completion_head_only=False)
        results.append(measure("trl_defaults", trl_defaults, opts.steps, opts.warmup))
    profiled = run(opts.profile, profile=True) if opts.profile else None
    peak_after = gemm_peak()
    best_peak = max(peak, peak_after)
    lines = [f"fp32 GEMM peak (2048³ matmul, {torch.get_num_threads()} threads): {peak:.1f} GFLOP/s before, "
             f"{peak_after:.1f} after"]
    base = results[0]["tokens_per_second"]
    if bf16_peak:
        lines.append(f"bf16 GEMM peak (2048³ matmul): {bf16_peak:.1f} GFLOP/s — the peak of the bf16 settings")
    lines.append(f"bf16: auto would choose {'bf16' if probe['bf16'] else 'fp32'} here (native bf16 flags "
                 f"{probe['flags'] or 'none'}, 1024³ matmul bf16/fp32 speed-up {probe['speedup']})")
    for r in results:
        r["peak_gflops"] = bf16_peak if r["bf16"] else best_peak
        r["share_of_peak"] = r["gflops"] / r["peak_gflops"]
        r["speedup_vs_first"] = r["tokens_per_second"] / base
        lines.append(f"{r['setting']:14s} {r['tokens_per_second']:7.1f} tokens/s  {r['gflops']:6.1f} GFLOP/s "
                     f"= {r['share_of_peak']:5.1%} of peak  {r['speedup_vs_first']:4.2f}× vs {results[0]['setting']}  "
                     f"loss after step {opts.warmup + opts.steps}: {r['loss_last_step']:.3f}  whole train() "
                     f"{r['seconds_with_warmup']:.0f} s")
    if cache:
        lines.append(f"frozen-block cache: a step {cache['step_seconds']:.2f} s → {cache['cached_step_seconds']:.2f} s "
                     f"with the {cache['frozen_blocks']} frozen blocks skipped (ceiling); building it: {cache['tokens_per_second']:.0f} "
                     f"tokens/s no-grad ({cache['rows']} rows timed) → {cache['build_seconds']:.0f} s for the "
                     f"{cache['train_rows']}-row train split ({cache['train_tokens']} tokens); a {cache['run_steps']}-step "
                     f"run ({cache['passes']:.1f} passes): {cache['run_seconds']:.0f} s → at best "
                     f"{cache['cached_run_seconds']:.0f} s ({cache['run_seconds'] / cache['cached_run_seconds']:.2f}×)")
    if profiled:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in profiled["time_shares"].items())
        lines.append(f"profile of {profiled['setting']} ({opts.steps} steps, CPU time): {shares}")
    print("\n".join(lines))
    write_record(opts.out, {"script": "bench/sft_throughput.py", **provenance(), "gemm_peak_gflops": [peak, peak_after],
                            "bf16_gemm_peak_gflops": bf16_peak, "bf16_auto_probe": probe,
                            "printed": lines, "runs": results, "profile": profiled, "frozen_cache": cache})


if __name__ == "__main__":
    main()
