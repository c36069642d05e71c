"""Supervised fine-tuning with TRL's SFTTrainer: one code path for every variant, on CPU, one GPU or many.

    python -m refusal_tokens.train --params params.yaml --variant single_r50     # a DVC stage
    accelerate launch --config_file configs/accelerate/fsdp.yaml -m refusal_tokens.train --config configs/paper_llama3_8b.yaml
    python -m refusal_tokens.train --config configs/paper_llama3_8b.yaml --dry-run  # print the trainer config

Data are conversational prompt/completion rows (notebook 01); TRL's completion-only loss covers the assistant
turn, whose first characters are the scheme token. Device settings are explicit: on CPU fp32 without gradient
checkpointing (TRL's defaults, bf16 + checkpointing, are emulated and very slow on an AVX2-only CPU); on CUDA bf16
autocast. ``bf16: auto`` also autocasts on a CPU with native bf16 where a short probe measures it faster; weights
and optimizer state stay fp32 everywhere.

Each run writes a Hub-ready folder: model + tokenizer (+ chat template), ``params.json`` (resolved config),
``training_log.json`` (loss and p(scheme token) vs step), ``metrics.json`` and a model card ``README.md``.
Interrupted runs resume from the last checkpoint in ``checkpoint_dir`` (a DVC ``persist`` output).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .files import atomic_dir
from .errors import DataError
from .tagging import refusal_tokens, scheme_tokens


@dataclass
class TrainConfig:
    name: str  # variant name, e.g. single_r50
    scheme: str  # none | single | category
    model: str  # folder holding base (+ tokens), or a Hub id
    train_file: str
    validation_file: str
    output_dir: str
    checkpoint_dir: str
    revision: str | None = None
    mix: str = ""
    init: str = ""  # recorded only: the token rows were initialised when `model` was prepared
    learning_rate: float = 2e-4
    new_token_lr: float = 0.0  # > 0: the scheme tokens' rows train at this rate and the old rows are frozen
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs (the CPU budget is set in steps)
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    global_batch_size: int = 0  # > 0: accumulation = global / (per-device batch × processes)
    max_length: int = 192
    # Rows are concatenated into one sequence per batch with restarting position ids, so no padding is computed
    # (TRL's padding-free collator; transformers builds a block-diagonal causal mask from the position ids, so
    # attention cannot cross rows: tests/test_train.py). Rows longer than max_length are dropped before training.
    padding_free: bool = False
    # > 0: the bottom k decoder blocks are frozen and the hidden state entering block k is detached, so backward
    # stops there (cost ≈ forward + 2 × the trainable share, instead of 3 × forward). The tied embedding / LM
    # head still trains through the head, so the scheme tokens' rows are learned. 0 = full fine-tuning (paper).
    freeze_layers: int = 0
    # TRL's fused LM head projects only the positions that carry a label on Triton devices (CUDA), but every
    # position elsewhere (so that tile shapes stay fixed for compilers): on a CPU the 49,152-wide head then also
    # runs, forward and backward, on the prompt tokens that completion-only loss ignores (1.2–1.4× per step here,
    # bench/sft_throughput.py, setting freeze15_fullhead). True: the head projects completion positions only, on
    # every device (completion_head_only); same loss and gradients up to float rounding (tests/test_train.py).
    completion_head_only: bool = True
    # CPU only, and no number changes (refusal_tokens.cpu): freed memory stays in the process instead of coming back
    # as fresh zero-filled pages each step, and TRL's LM-head backward builds the logits gradient in place instead
    # of in a dozen new tensors, with the same float operations (bit-identical gradients: tests/test_cpu.py).
    # bench/sft_throughput.py times the default with them off ("freeze15_before") and on, in one run
    # or (--alternate N) each in its own process, counterbalanced.
    exact_cpu_speedups: bool = True
    max_train_rows: int = 0  # 0 = every row of the train split
    eval_rows: int = 64  # validation rows for the loss (a fixed subset: loss is the costly part)
    score_rows: int = 0  # validation prompts scored for p(token) at the end; 0 = all
    curve_every: int = 0  # steps between (val loss, p(token)) points; 0 = only the final point
    save_steps: int = 8
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    # None: bf16 autocast on CUDA, fp32 on CPU (bit-reproducible across CPUs); "auto": also bf16 autocast on a CPU
    # whose flags list native bf16 (avx512_bf16 / amx_bf16) and where a short bf16-vs-fp32 matmul probe measures
    # ≥ 1.3× (cpu_bf16_pays); True / False: forced. Weights and AdamW state stay fp32 in every case (master_dtype)
    bf16: bool | str | None = None
    gradient_checkpointing: bool | None = None  # None: off (small models); the paper profile turns it on
    torch_threads: int = 0  # 0 = torch's default
    dataloader_num_workers: int = 0
    # "random", not "group_by_length": length grouping sorts each mega-batch of 50 × batch rows by length, and
    # here length tracks the label (template refusals are short), so a 20-step run would see the long answers
    # first and the short refusals last, and end up predicting [refuse] for everything (measured: p≈0.97 on all).
    train_sampling_strategy: str = "random"
    report_to: str = "none"
    extra_sft_args: dict = field(default_factory=dict)  # any other SFTConfig field, passed through

    @classmethod
    def from_mapping(cls, values: Mapping, where: str = "training config") -> "TrainConfig":
        """A config from user input (a ``--config`` file), checked by the schema (``config.TrainFile``: types,
        ranges, unknown and missing keys, every problem at once). Code that builds a TrainConfig from values the
        schema has already checked (``config_from_params``) calls the constructor directly."""
        from .config import TrainFile, check_model

        checked = check_model(TrainFile, values, where)
        return cls(**{f.name: getattr(checked, f.name) for f in dataclasses.fields(cls)})


def resolve_device(cfg: TrainConfig) -> str:
    import torch

    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPU flags of native bf16 matmuls (without them bf16 is emulated)


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def matmul_speedup_bf16(n: int = 1024, seconds: float = 0.5) -> float:
    """fp32 time / bf16 time of an n×n matmul, each repeated for about ``seconds`` (after one warm-up)."""
    import torch

    def rate(dtype) -> float:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.matmul(a, b)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            torch.matmul(a, b)
            count += 1
        return count / (time.perf_counter() - start)

    return rate(torch.bfloat16) / rate(torch.float32)


def cpu_bf16_pays(flags: set[str] | None = None, probe=matmul_speedup_bf16, min_speedup: float = 1.3) -> dict:
    """Whether bf16 autocast should pay on this CPU: ``{"bf16": bool, "flags": [...], "speedup": float | None}``.
    Without a native bf16 flag the probe is not run (bf16 is emulated: measured several times slower)."""
    flags = cpu_flags() if flags is None else flags
    native = [f for f in BF16_FLAGS if f in flags]
    if not native:
        return {"bf16": False, "flags": native, "speedup": None}
    speedup = probe()
    return {"bf16": speedup >= min_speedup, "flags": native, "speedup": round(speedup, 2)}


def resolve_bf16(cfg: TrainConfig, device: str) -> tuple[bool, dict | None]:
    """(bf16 autocast on?, the CPU probe's record when ``bf16: auto`` ran it)."""
    if cfg.bf16 == "auto":
        if device == "cuda":
            return True, None
        if world_size() > 1:  # each process would probe on its own (sharing the cores) and could decide otherwise
            return False, {"bf16": False, "flags": [], "speedup": None,
                           "reason": "several processes: the per-process probe could disagree, so fp32"}
        probe = cpu_bf16_pays()
        return probe["bf16"], probe
    return ((device == "cuda") if cfg.bf16 is None else bool(cfg.bf16)), None


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def sharded_launch() -> bool:
    """Whether ``accelerate launch`` was given an FSDP or DeepSpeed config (it says so in these variables)."""
    return any(os.environ.get(name, "").lower() in ("1", "true")
               for name in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"))


def sft_config(cfg: TrainConfig, n_train_rows: int, device: str | None = None, processes: int | None = None,
               check_hardware: bool = True, bf16_decided: bool | None = None):
    """The full TRL ``SFTConfig`` for a run, with explicit per-device precision and memory settings.

    ``check_hardware=False`` (dry runs) builds a CUDA configuration on a machine without a GPU: transformers
    refuses bf16 there, so the config is built without it and bf16 is set afterwards; the real launch, on the GPU
    machine, validates it.
    """
    from trl import SFTConfig

    device = device or resolve_device(cfg)
    processes = processes or world_size()
    accumulation = cfg.gradient_accumulation_steps
    if cfg.global_batch_size:
        per_step = cfg.per_device_train_batch_size * processes
        if cfg.global_batch_size % per_step:
            raise DataError(f"{cfg.name}: global_batch_size {cfg.global_batch_size} is not a multiple of "
                            f"per-device batch {cfg.per_device_train_batch_size} × {processes} processes")
        accumulation = cfg.global_batch_size // per_step
    global_batch = cfg.per_device_train_batch_size * processes * accumulation
    steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(n_train_rows / global_batch * cfg.num_train_epochs)
    bf16 = resolve_bf16(cfg, device)[0] if bf16_decided is None else bf16_decided
    checkpointing = bool(cfg.gradient_checkpointing)
    curve = cfg.curve_every > 0
    deferred_bf16 = bf16 and not check_hardware
    args = SFTConfig(
        output_dir=cfg.checkpoint_dir,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=math.ceil(cfg.warmup_ratio * steps),  # this TRL takes steps, not a ratio
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=accumulation,
        # padding-free: TRL does not enforce max_length without packing; fit_length has already dropped longer rows
        max_length=None if cfg.padding_free else cfg.max_length,
        padding_free=cfg.padding_free,
        completion_only_loss=True,  # the loss covers the assistant turn, scheme token included
        packing=False,
        bf16=bf16 and not deferred_bf16,
        fp16=False,
        activation_checkpointing=checkpointing,
        use_cpu=device == "cpu",
        eval_strategy="steps" if curve else "no",
        eval_steps=cfg.curve_every if curve else None,
        eval_on_start=curve,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=1,
        logging_steps=1,
        logging_first_step=True,
        report_to=cfg.report_to,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=cfg.dataloader_num_workers,
        train_sampling_strategy=cfg.train_sampling_strategy,
        disable_tqdm=not sys.stderr.isatty(),
        **cfg.extra_sft_args,
    )
    if deferred_bf16:
        args.bf16 = True
    return args


def load_rows(path: str) -> list[dict]:
    from .files import iter_jsonl

    rows = []
    for number, row in iter_jsonl(path):
        if "prompt" not in row or "completion" not in row:
            raise DataError(f"{path}:{number}: a row needs 'prompt' and 'completion'")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def new_token_optimizer(model, tokenizer, cfg: TrainConfig, args):
    """AdamW in which the embedding matrix (tied with the LM head) is its own group at ``new_token_lr``, with a
    gradient mask so that only the scheme tokens' rows move; every other weight trains at ``learning_rate``.

    With Adam a gradient's scale does not set the step size, so the only way to give a few rows a faster rate is
    their own parameter group; the mask keeps the old vocabulary where the pretrained model left it.
    """
    import torch

    from .tokens import require_tokens

    embed = model.get_input_embeddings().weight
    mask = torch.zeros(embed.shape[0], 1, dtype=embed.dtype)
    mask[require_tokens(tokenizer, cfg.scheme)] = 1.0

    def keep_new_rows(grad):  # the trainer moves the model to its device after this is built: follow the gradient
        return grad * mask.to(grad.device, grad.dtype)

    embed.register_hook(keep_new_rows)
    head = model.get_output_embeddings()
    tied = head is None or head.weight is embed
    if not tied:
        head.weight.register_hook(keep_new_rows)
    special = {id(embed)} | (set() if tied else {id(head.weight)})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in special]
    groups = [{"params": [embed] + ([] if tied else [head.weight]), "lr": cfg.new_token_lr, "weight_decay": 0.0},
              {"params": rest, "lr": cfg.learning_rate, "weight_decay": cfg.weight_decay}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                             eps=args.adam_epsilon)


def freeze_bottom(model, k: int) -> int:
    """Freeze the bottom ``k`` decoder blocks and detach the hidden state entering block ``k``; returns the number
    of parameters left trainable. Raises DataError when ``k`` is not below the number of blocks."""
    layers = model.get_decoder().layers
    if not 0 < k < len(layers):
        raise DataError(f"freeze_layers must lie in 1..{len(layers) - 1} for this {len(layers)}-block model, got {k}")
    for layer in layers[:k]:
        for parameter in layer.parameters():
            parameter.requires_grad_(False)

    def detach_input(module, args, kwargs):
        if args:
            return (args[0].detach(), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"].detach()}

    layers[k].register_forward_pre_hook(detach_input, with_kwargs=True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def completion_head_only(trainer) -> None:
    """Make ``trainer``'s loss project TRL's fused LM head at completion positions only, on every device.

    ``trl.trainer.utils.add_fused_lm_head`` (which SFTTrainer installs) scores only the positions whose label is not
    -100 when ``_use_triton(device)`` holds, and every position otherwise; the kernels themselves choose Triton or
    torch ops by their own check, which this leaves alone. So the trainer's ``compute_loss`` (training and
    evaluation) runs with that one decision forced to "compact", and restores it afterwards: other trainers in the
    process are unaffected. Raises DataError when the installed TRL no longer has the hook (TRL is pinned to 1.16).
    """
    import trl.trainer.utils as trl_utils

    if not callable(getattr(trl_utils, "_use_triton", None)):
        raise DataError("completion_head_only: this TRL has no trl.trainer.utils._use_triton to switch; "
                        "set train.common.completion_head_only: false")
    compute_loss = trainer.compute_loss

    def compact_compute_loss(*args, **kwargs):
        saved = trl_utils._use_triton
        trl_utils._use_triton = lambda device: True
        try:
            return compute_loss(*args, **kwargs)
        finally:
            trl_utils._use_triton = saved

    trainer.compute_loss = compact_compute_loss


def fit_length(rows: Sequence[Mapping], tokenizer, max_length: int) -> tuple[list[Mapping], int]:
    """Drop rows whose templated prompt + completion exceeds ``max_length`` tokens.

    TRL would truncate them from the right, cutting the completion (and its scheme token's context) short.
    """
    kept = [r for r in rows if len(tokenizer.apply_chat_template(list(r["prompt"]) + list(r["completion"]),
                                                                 tokenize=True, return_dict=False)) <= max_length]
    if not kept:
        raise DataError(f"every row is longer than max_length {max_length}")
    return kept, len(rows) - len(kept)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (scikit-learn ``roc_auc_score``; ties count half); None when one class is absent."""
    from sklearn.metrics import roc_auc_score

    labels = [bool(y) for y in labels]
    if len(set(labels)) < 2:
        return None
    return float(roc_auc_score(labels, list(scores)))


def category_auroc(per_row: Sequence[Mapping]) -> dict[str, float | None]:
    """Per category with refusals: AUROC of p_refusal, refusals vs the *same category's* answers (its contrast
    rows). Comparing with every answer row, general chat included, would reward telling CoCoNot-style prompts from
    chat. None where the category has no answer rows."""
    out = {}
    for category in sorted({r["category"] for r in per_row if r["should_refuse"]}):
        same = [r for r in per_row if r["category"] == category]
        out[category] = auroc([r["p_refusal"] for r in same], [bool(r["should_refuse"]) for r in same])
    return out


def token_report(model, tokenizer, rows: Sequence[Mapping], scheme: str, batch_size: int = 16) -> dict:
    """p(scheme tokens) at the first response position of each row, and the summary numbers.

    ``first_token_accuracy``: argmax over the scheme's tokens equals the row's token. ``auroc``: p(refusal) = sum
    over the refusal tokens, refusal rows vs answer rows.
    """
    from . import control

    tokens = scheme_tokens(scheme)
    if not tokens:
        return {"rows": len(rows), "first_token_accuracy": None, "auroc": None, "auroc_by_category": None,
                "per_row": []}
    # the same scoring path as the benchmarks (control.score), at T = 1
    probs = [s["p"]["1"] for s in control.score(model, tokenizer, [r["prompt"] for r in rows], scheme,
                                                  batch_size=batch_size)]
    refusals = refusal_tokens(scheme)
    p_refusal = [sum(p[t] for t in refusals) for p in probs]
    chosen = [max(tokens, key=p.__getitem__) for p in probs]
    per_row = [{"id": r.get("id"), "category": r.get("category"), "subcategory": r.get("subcategory"),
                "should_refuse": r.get("should_refuse"),
                "first_token": r.get("first_token"), "p_refusal": pr, "argmax": c,
                "p_label": float(p[r["first_token"]]) if r.get("first_token") else None}
               for r, p, pr, c in zip(rows, probs, p_refusal, chosen)]
    accuracy = sum(r["argmax"] == r["first_token"] for r in per_row) / len(per_row)
    by_category = category_auroc(per_row)
    return {"rows": len(rows), "first_token_accuracy": accuracy,
            "auroc": auroc(p_refusal, [bool(r.get("should_refuse")) for r in rows]), "auroc_by_category": by_category,
            "mean_p_label": sum(r["p_label"] for r in per_row) / len(per_row), "per_row": per_row}


def _curve_callback(tokenizer, rows, scheme, curve):
    from transformers import TrainerCallback

    class Curve(TrainerCallback):
        """After each evaluation: mean p(correct scheme token) on the scored validation prompts."""

        def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
            if curve and curve[-1]["step"] == state.global_step:
                return  # the final evaluate() after an eval step: already recorded
            point = {"step": state.global_step, "eval_loss": (metrics or {}).get("eval_loss")}
            if scheme_tokens(scheme):
                report = token_report(model, tokenizer, rows, scheme)
                point.update(mean_p_label=report["mean_p_label"], first_token_accuracy=report["first_token_accuracy"],
                             auroc=report["auroc"])
            curve.append(point)

    return Curve()


def model_card(cfg: TrainConfig, metrics: Mapping, provenance: Mapping) -> str:
    tokens = scheme_tokens(cfg.scheme)
    ids = provenance.get("token_ids", {})
    return "\n".join([
        "---", "library_name: transformers", "tags: [refusal-tokens, sft, trl]", "---", "",
        f"# {cfg.name}: refusal-token SFT ({cfg.scheme} scheme)", "",
        "Trained by the refusal-tokens study (Jain et al., *Refusal Tokens*, COLM 2025, reproduced).", "",
        f"- Base: {json.dumps({k: v for k, v in provenance.items() if k != 'token_ids'})}",
        f"- Data mix: `{cfg.mix}` ({cfg.train_file}); scheme `{cfg.scheme}`; token init `{cfg.init or 'n/a'}`",
        f"- Tokens: " + (", ".join(f"`{t}` = {ids.get(t, '?')}" for t in tokens) or "none (baseline)"),
        f"- Training: lr {cfg.learning_rate} ({cfg.lr_scheduler_type}, warmup {cfg.warmup_ratio}), "
        f"{metrics['steps']} steps × {metrics['global_batch']} rows, max length {cfg.max_length}, "
        f"{metrics['device']} ({metrics['precision']})",
        f"- Train tokens {metrics['train_tokens']:,} in {metrics['wall_seconds']:.0f} s "
        f"({metrics['tokens_per_second']:.0f} tokens/s); final train loss {metrics['final_train_loss']:.3f}, "
        f"validation loss {metrics['final_validation_loss']:.3f}",
        f"- First-token accuracy {metrics['first_token_accuracy']}, AUROC of p(refusal) {metrics['auroc']} "
        f"on {metrics['scored_rows']} validation prompts",
        "", "## Use", "",
        "Read the softmax probability of the refusal token(s) at the first response position, threshold or bias "
        "it, force the chosen token and let the model continue (see the study's notebook 03).",
        "", "## Deviations", "",
        "Stand-in training data and CPU-budget training; see the study README's *Deviations* section.", "",
        "**Content warning:** trained on refusals of harmful requests.", "",
    ])


def master_dtype(cfg: TrainConfig, device: str):
    """The dtype the weights are loaded and optimised in: fp32 on every device. bf16 (``cfg.bf16``, on by default
    on CUDA) is autocast by the trainer; loading bf16 weights and stepping AdamW on them would round most
    lr-2e-5 updates away (bf16 keeps 8 bits of mantissa)."""
    import torch

    return torch.float32


@dataclass
class Prepared:
    """What :func:`build_trainer` sets up: the trainer and the rows around it."""

    trainer: object
    tokenizer: object
    args: object
    device: str
    scored: list
    curve: list
    too_long: int
    precision_probe: dict | None = None  # bf16: auto on a CPU: what the probe found
    trainable: int = 0  # parameters with gradients, counted before FSDP / ZeRO-3 shard them
    lora: tuple[int, float] | None = None  # (rank, alpha) of the adapters on the trained blocks, if any


def check_lora(lora: tuple[int, float] | None) -> tuple[int, float] | None:
    """``lora`` as ``(rank, alpha)``, checked; None = no adapters. Raises DataError for a rank below 1 or an alpha
    not above 0."""
    if lora is None:
        return None
    rank, alpha = lora
    if int(rank) != rank or rank < 1 or not alpha > 0:
        raise DataError(f"adapters need an integer rank ≥ 1 and an alpha > 0, got rank {rank!r}, alpha {alpha!r}")
    return int(rank), float(alpha)


def build_trainer(cfg: TrainConfig, callbacks: Sequence = (), lora: tuple[int, float] | None = None) -> Prepared:
    """Load rows, tokenizer and model, and build TRL's SFTTrainer for one variant (nothing is trained yet).

    ``lora=(rank, alpha)``: low-rank adapters on the linear layers of the blocks above ``freeze_layers``, whose
    weights then stay frozen (``refusal_tokens.adapters``; tried on dev data by ``bench/dev_selection.py --lora``,
    not a pipeline setting)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    device = resolve_device(cfg)
    train_rows = load_rows(cfg.train_file)
    if cfg.max_train_rows:
        train_rows = train_rows[:cfg.max_train_rows]
    val_rows = load_rows(cfg.validation_file)
    for rows, path in ((train_rows, cfg.train_file), (val_rows, cfg.validation_file)):
        schemes = {r.get("scheme") for r in rows}
        if schemes != {cfg.scheme}:
            raise DataError(f"{path} holds scheme(s) {sorted(map(str, schemes))}, but the variant is {cfg.scheme!r}")
    tokenizer = AutoTokenizer.from_pretrained(cfg.model, revision=cfg.revision)
    if scheme_tokens(cfg.scheme):
        from .tokens import require_tokens

        require_tokens(tokenizer, cfg.scheme)  # the preparation stage adds them; training never resizes
    train_rows, too_long = fit_length(train_rows, tokenizer, cfg.max_length)
    val_rows, _ = fit_length(val_rows, tokenizer, cfg.max_length)
    lora = check_lora(lora)
    if lora and (sharded_launch() or cfg.new_token_lr > 0):
        raise DataError(f"{cfg.name}: adapters are merged into the weights before saving, in one process, and train "
                        "beside the full embedding; they run neither under FSDP / DeepSpeed nor with new_token_lr")
    if cfg.new_token_lr > 0 and sharded_launch():
        raise DataError(f"{cfg.name}: new_token_lr builds its own optimizer over whole parameters, which FSDP and "
                        "DeepSpeed shard after it is built; set new_token_lr: 0 under those launch configs")
    bf16, probe = resolve_bf16(cfg, device)
    # The trainer config first: building it starts the process group, which transformers needs *before* loading
    # for FSDP's cpu-RAM-efficient loading (weights read on local rank 0 only) and DeepSpeed ZeRO-3's sharded init.
    args = sft_config(cfg, len(train_rows), device, bf16_decided=bf16)
    # Loaded on the CPU. The trainer places it: on this process's own device (DDP, one GPU), or not at all where
    # FSDP / DeepSpeed shard it (a .to("cuda") here would put a full copy on GPU 0 from every process).
    model = AutoModelForCausalLM.from_pretrained(cfg.model, revision=cfg.revision, dtype=master_dtype(cfg, device))
    if cfg.freeze_layers:
        freeze_bottom(model, cfg.freeze_layers)
    if lora:
        from .adapters import add_lora

        add_lora(model, cfg.freeze_layers, *lora, seed=cfg.seed)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    columns = ("prompt", "completion")
    train_set = Dataset.from_list([{k: r[k] for k in columns} for r in train_rows])
    eval_set = Dataset.from_list([{k: r[k] for k in columns} for r in val_rows[:cfg.eval_rows]])
    scored = val_rows[:cfg.score_rows] if cfg.score_rows else val_rows
    curve_rows = val_rows[:cfg.eval_rows]
    curve: list[dict] = []
    optimizer = new_token_optimizer(model, tokenizer, cfg, args) if cfg.new_token_lr > 0 else None
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                         processing_class=tokenizer, optimizers=(optimizer, None),
                         callbacks=[_curve_callback(tokenizer, curve_rows, cfg.scheme, curve), *callbacks])
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not trainer.is_fsdp_enabled:
        # accelerate turns FSDP on only for GPU-like process groups (MULTI_GPU, …): on CPUs it runs plain DDP
        print(f"{cfg.name}: the launch config asks for FSDP, but accelerate shards only on GPU-like devices; this "
              f"{device} run is data parallel (every process holds the whole model)", file=sys.stderr)
    if cfg.completion_head_only:
        completion_head_only(trainer)
    from . import cpu

    if cfg.exact_cpu_speedups and device == "cpu":
        cpu.retain_freed_memory()  # process-wide and sticky: bench/sft_throughput.py runs the "off" setting first
        cpu.in_place_head_backward()
    else:
        cpu.restore_head_backward()
    return Prepared(trainer, tokenizer, args, device, scored, curve, too_long, probe, trainable, lora)


def run(cfg: TrainConfig, callbacks: Sequence = (), lora: tuple[int, float] | None = None) -> dict:
    """Train one variant; write the Hub-ready folder atomically; return its metrics. ``lora``: see
    :func:`build_trainer`; the adapters are merged into the weights before saving, so the folder is a plain model.

    One process or many (``accelerate launch`` / ``torchrun``): every process trains, evaluates and scores the
    same validation rows (under FSDP the forward passes are collective), and gathers the full weights; only the
    main process writes the model folder, its files and the checkpoint clean-up, while the others wait.
    """
    prepared = build_trainer(cfg, callbacks, lora)
    trainer, tokenizer, args, device = prepared.trainer, prepared.tokenizer, prepared.args, prepared.device
    scored, curve, too_long = prepared.scored, prepared.curve, prepared.too_long
    accelerator = trainer.accelerator
    main = accelerator.is_main_process
    last = resumable_checkpoint(cfg, main=main, barrier=accelerator.wait_for_everyone)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    wall = time.perf_counter() - start
    final_eval = trainer.evaluate()
    report = token_report(trainer.model, tokenizer, scored, cfg.scheme)
    history = trainer.state.log_history
    train_losses = [h["loss"] for h in history if "loss" in h]
    train_tokens = max((h.get("num_tokens", 0) for h in history), default=0)
    metrics = {
        "variant": cfg.name, "scheme": cfg.scheme, "mix": cfg.mix, "init": cfg.init,
        "device": device, "precision": "bf16" if args.bf16 else "fp32", "processes": world_size(),
        "precision_probe": prepared.precision_probe,
        "steps": trainer.state.global_step,
        "global_batch": args.per_device_train_batch_size * world_size() * args.gradient_accumulation_steps,
        "resumed_from": last,
        "padding_free": cfg.padding_free, "freeze_layers": cfg.freeze_layers,
        "trainable_parameters": prepared.trainable,
        "train_rows_dropped_too_long": too_long,
        "train_tokens": int(train_tokens), "wall_seconds": wall,
        "tokens_per_second": train_tokens / wall if wall else None,
        "train_runtime": result.metrics.get("train_runtime"),
        "final_train_loss": train_losses[-1] if train_losses else None,
        "final_validation_loss": final_eval.get("eval_loss"), "validation_loss_rows": len(trainer.eval_dataset),
        "first_token_accuracy": report["first_token_accuracy"], "auroc": report["auroc"],
        "auroc_by_category": report.get("auroc_by_category"), "scored_rows": report["rows"],
    }
    if prepared.lora:
        from .adapters import merge

        metrics["lora_rank"], metrics["lora_alpha"] = prepared.lora
        merge(accelerator.unwrap_model(trainer.model))
    state_dict = full_state_dict(trainer)  # collective: every process takes part, the main one gets the weights
    if main:
        with atomic_dir(cfg.output_dir) as tmp:
            accelerator.unwrap_model(trainer.model).save_pretrained(tmp, state_dict=state_dict,
                                                                    safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            provenance_file = Path(cfg.model) / "provenance.json"
            provenance = json.loads(provenance_file.read_text()) if provenance_file.is_file() else {"model": cfg.model}
            (tmp / "params.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
            (tmp / "training_log.json").write_text(json.dumps({"log_history": history, "curve": curve}, indent=2) + "\n")
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            (tmp / "validation_scores.json").write_text(json.dumps(report["per_row"]) + "\n")
            (tmp / "README.md").write_text(model_card(cfg, metrics, provenance))
        finish_checkpoints(cfg)
    accelerator.wait_for_everyone()  # no process returns before the folder is in place
    return metrics


def full_state_dict(trainer) -> dict:
    """The model's full (unsharded) weights, for ``save_pretrained`` on the main process.

    ``Trainer.save_model`` writes no weights at all under FSDP's ``SHARDED_STATE_DICT`` (the state-dict type that
    keeps intermediate checkpoints cheap), so the final folder is gathered here instead, the same way under every
    launch: ``Accelerator.get_state_dict`` gathers FSDP (1 and 2) shards into a full state dict, and DeepSpeed
    ZeRO-3 into a 16-bit one (``zero3_save_16bit_model: true`` in configs/accelerate/zero3.yaml); with one process
    or DDP it is the model's own state dict. Every process must call it.
    """
    model = trainer.model_wrapped if trainer.is_deepspeed_enabled else trainer.model
    return trainer.accelerator.get_state_dict(model)


def _config_key(cfg: TrainConfig) -> dict:
    values = dataclasses.asdict(cfg)
    values.pop("output_dir")  # where the result goes does not change what a checkpoint holds
    return values


def resumable_checkpoint(cfg: TrainConfig, main: bool = True, barrier=None) -> str | None:
    """The last checkpoint of an interrupted run *of this same configuration*, else None.

    The checkpoint folder survives reruns (DVC ``persist``), so a run with changed parameters must not resume
    from it: its checkpoints are discarded, with a message. With several processes only the ``main`` one checks,
    discards and stamps; the others wait at ``barrier`` and then read the same folder.
    """
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(cfg.checkpoint_dir)
    if main:
        stamp = folder / "config.json"
        if folder.is_dir() and stamp.is_file() and json.loads(stamp.read_text()) != _config_key(cfg):
            print(f"{cfg.name}: checkpoints in {folder} are from another configuration; starting afresh",
                  file=sys.stderr)
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "DONE").unlink(missing_ok=True)
        stamp.write_text(json.dumps(_config_key(cfg), indent=2) + "\n")
    if barrier is not None:
        barrier()
    last = get_last_checkpoint(str(folder))
    if last and main:
        print(f"{cfg.name}: resuming from {last}", file=sys.stderr)
    return last


def finish_checkpoints(cfg: TrainConfig) -> None:
    """After a finished run the checkpoints (model + optimizer, ≈3× the model) are removed; a DONE marker stays."""
    folder = Path(cfg.checkpoint_dir)
    for child in folder.glob("checkpoint-*"):
        shutil.rmtree(child)
    (folder / "DONE").write_text("finished; the model is in " + cfg.output_dir + "\n")


def config_from_params(params, variant: str) -> TrainConfig:
    """A variant of ``params.yaml: train.variants`` merged over ``train.common``, with the grid's paths.

    ``params`` is the validated file (``config.Params``, from ``config.load``): every value was checked there
    once, so the config is built as it is."""
    train, model = params.train, params.model
    if variant not in train.variants:
        raise DataError(f"unknown variant {variant!r}; params.yaml train.variants has {sorted(train.variants)}")
    spec = train.variants[variant]
    root = Path(model.dir) / model.name
    mixes = Path("data/processed/mixes")
    overrides = {k: getattr(spec, k) for k in spec.model_fields_set if k not in ("scheme", "mix", "init")}
    values = {
        **train.common.model_dump(), **overrides,
        "name": variant, "scheme": spec.scheme, "mix": spec.mix, "init": spec.init,
        "model": str(root / "init" / f"{spec.scheme}-{spec.init}"),
        "train_file": str(mixes / spec.mix / spec.scheme / "train.jsonl"),
        "validation_file": str(mixes / spec.mix / spec.scheme / "validation.jsonl"),
        "output_dir": str(root / "sft" / variant),
        "checkpoint_dir": str(Path(train.checkpoints_dir) / model.name / variant),
    }
    return TrainConfig(**values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SFT one refusal-token variant with TRL.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--variant", help="a key of params.yaml train.variants")
    group.add_argument("--config", help="a YAML file holding one TrainConfig (e.g. configs/paper_llama3_8b.yaml)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved trainer config; load nothing")
    parser.add_argument("--rows", type=int, default=0, help="train rows assumed by --dry-run (default: count)")
    parser.add_argument("--processes", type=int, default=0, help="processes assumed by --dry-run (default: WORLD_SIZE)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one field of a --config file (value read as YAML), e.g. --set device=cpu")
    args = parser.parse_args(argv)
    try:
        if args.variant:
            if args.set:
                raise DataError("--set overrides a --config file; a params.yaml variant is changed with "
                                "`dvc exp run -S train.common.KEY=VALUE`")
            from .config import load

            cfg = config_from_params(load(args.params, require=("model", "train")), args.variant)
        else:
            from .config import read_yaml

            cfg = TrainConfig.from_mapping({**read_yaml(args.config), **parse_overrides(args.set)}, args.config)
        if args.dry_run:
            rows = args.rows or (sum(1 for _ in open(cfg.train_file)) if os.path.isfile(cfg.train_file) else 0)
            print(json.dumps({"train_config": dataclasses.asdict(cfg),
                              "sft_config": sft_config(cfg, rows, processes=args.processes or None,
                                                            check_hardware=False).to_dict()}, indent=2, default=str))
            return 0
        metrics = run(cfg)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(metrics, indent=2))
    return 0


def parse_overrides(items: Sequence[str]) -> dict:
    """``["device=cpu", "max_steps=2"]`` → ``{"device": "cpu", "max_steps": 2}`` (values read as YAML; the keys are
    checked by TrainConfig.from_mapping)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DataError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


if __name__ == "__main__":
    raise SystemExit(main())


def load_variant(folder: str | os.PathLike) -> dict:
    """The files a finished variant folder holds: metrics, params, training log, validation scores."""
    folder = Path(folder)
    if not (folder / "metrics.json").is_file():
        raise DataError(f"{folder} is not a finished variant (no metrics.json): run `dvc repro train`")
    read = lambda name: json.loads((folder / name).read_text())  # noqa: E731
    return {"metrics": read("metrics.json"), "params": read("params.json"), "log": read("training_log.json"),
            "scores": read("validation_scores.json")}


SUMMARY_COLUMNS = ("scheme", "mix", "init", "steps", "train_tokens", "wall_seconds", "tokens_per_second",
                   "final_train_loss", "final_validation_loss", "first_token_accuracy", "auroc", "auroc_by_category",
                   "scored_rows", "train_rows_dropped_too_long")


def summary(variants: Mapping[str, Mapping]) -> dict[str, dict]:
    """``reports/metrics/sft.json``: per variant, its training and validation numbers."""
    return {name: {key: v["metrics"].get(key) for key in SUMMARY_COLUMNS} for name, v in variants.items()}
