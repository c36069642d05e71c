"""SFT throughput on this machine: training settings side by side in one run, through TRL's SFTTrainer.

    python bench/sft_throughput.py [--model models/smollm2-135m/init/single-words] [--steps 6] [--warmup 2]
                                   [--settings padded,padding_free,freeze15] [--with-trl-defaults] [--profile freeze15]

Every setting sees the same model, data (the r50 mix, single scheme, rows ≤ max_length), seed and batch of 8, and
trains ``warmup + steps`` steps; the first ``warmup`` are not timed. ``--profile SETTING`` runs that setting once
more under ``torch.profiler`` (not timed) and records where its timed steps' CPU time goes. Settings (our CPU
default is ``freeze15``):

- ``padded``: fp32, no gradient checkpointing, rows padded to the longest in the batch (the earlier default);
- ``padding_free``: the same rows concatenated with restarting position ids (TRL ``padding_free=True``);
- ``freeze15`` / ``freeze20``: padding-free, and the bottom 15 / 20 of 30 blocks frozen (backward stops there);
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
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


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


def measure(label: str, cfg, steps: int, warmup: int, compiled: bool = False, profile: bool = False) -> dict:
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

    prepared = train.build_trainer(cfg, callbacks=[Clock()])
    trainer = prepared.trainer
    trainer.args.save_strategy = "no"
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
            "completion_head_only": cfg.completion_head_only,
            "bf16": bool(trainer.args.bf16), "torch_compile": compiled,
            "gradient_checkpointing": bool(getattr(trainer.args, "activation_checkpointing", False)
                                           or trainer.args.gradient_checkpointing),
            "timed_steps": steps, "tokens": timed_tokens, "seconds": seconds,
            "seconds_with_warmup": total,  # train() from start to end, evaluation and the first (compiling) steps too
            "tokens_per_second": timed_tokens / seconds, "gflops": flops / seconds / 1e9,
            "loss_last_step": losses[-1] if losses else None}


SETTINGS = {
    "padded": {"padding_free": False, "freeze_layers": 0},
    "padding_free": {"padding_free": True, "freeze_layers": 0},
    "freeze15": {"padding_free": True, "freeze_layers": 15},
    "freeze20": {"padding_free": True, "freeze_layers": 20},
    "freeze15_fullhead": {"padding_free": True, "freeze_layers": 15, "completion_head_only": False},  # TRL on CPU
    "freeze15_bf16": {"padding_free": True, "freeze_layers": 15, "bf16": True},  # what bf16: auto picks where it pays
    "freeze15_compile": {"padding_free": True, "freeze_layers": 15, "compile": True},  # torch.compile (inductor)
}


def main() -> None:
    from common import gemm_peak, provenance, write_record

    from refusal_tokens import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/smollm2-135m/init/single-words")
    parser.add_argument("--data", default="data/processed/mixes/r50/single/train.jsonl")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--settings", default="padded,padding_free,freeze15")
    parser.add_argument("--with-trl-defaults", action="store_true", help="also TRL's SFTConfig defaults (slow)")
    parser.add_argument("--profile", default="", help="also profile this setting's timed steps (torch.profiler, "
                        "one more run, not timed): where the time goes")
    parser.add_argument("--out", default=str(HERE.parent / "reports" / "bench" / "sft_throughput.json"))
    opts = parser.parse_args()
    for name in [*opts.settings.split(","), *([opts.profile] if opts.profile else [])]:
        if name not in SETTINGS:
            parser.error(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")

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
        setting = {k: v for k, v in SETTINGS[name].items() if k != "compile"}
        return measure(name, config(name, **setting), opts.steps, opts.warmup,
                       compiled=SETTINGS[name].get("compile", False), profile=profile)

    results = [run(name) for name in names]
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
    if profiled:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in profiled["time_shares"].items())
        lines.append(f"profile of {profiled['setting']} ({opts.steps} steps, CPU time): {shares}")
    print("\n".join(lines))
    write_record(opts.out, {"script": "bench/sft_throughput.py", **provenance(), "gemm_peak_gflops": [peak, peak_after],
                            "bf16_gemm_peak_gflops": bf16_peak, "bf16_auto_probe": probe,
                            "printed": lines, "runs": results, "profile": profiled})


if __name__ == "__main__":
    main()
