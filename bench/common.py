"""What the benchmark scripts share: the CoCoNot calibration prompts, the model, the GEMM peak, and how a bench
JSON records its command, date and CPU."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def counterbalanced(names, rounds: int) -> list[tuple[int, str]]:
    """(round, setting) in the order a bench runs them: the settings' order reversed every other round (A B, B A,
    A B, …), so a machine that speeds up or slows down during the bench favours none of them."""
    return [(r, name) for r in range(rounds) for name in (list(names) if r % 2 == 0 else list(reversed(names)))]


def coconot_sample(n: int) -> list[dict]:
    """A stratified sample of CoCoNot original + contrast prompts (the calibration prompts), as benchmark rows."""
    from refusal_tokens import benchmarks

    mirror = os.environ.get("REFUSAL_TOKENS_MIRROR", str(HERE.parent.parent / "shared" / "datasets"))
    return benchmarks.stratified(benchmarks.benchmark_rows("coconot_original", mirror)
                                 + benchmarks.benchmark_rows("coconot_contrast", mirror), n, 0)


def load_model(path: str):
    """``(model, tokenizer)`` in fp32 on CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)


def gemm_peak(n: int = 2048, repeats: int = 10, dtype=None) -> float:
    """GFLOP/s of an n³ matmul (fp32 unless ``dtype`` says otherwise), the peak the benches compare with."""
    import torch

    dtype = dtype or torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def cpu_info() -> dict:
    """CPU model, the flags that decide fp32 / bf16 speed, and torch's threads (for the bench JSON)."""
    import torch

    from refusal_tokens.train import cpu_flags

    model, flags = "unknown", cpu_flags()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    relevant = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_vnni", "avx_vnni"]
    return {"cpu": model, "flags": [f for f in relevant if f in flags], "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__}


def provenance() -> dict:
    """What every bench JSON records besides its numbers: the command line, the date and the CPU."""
    return {"command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), **cpu_info()}


def write_record(path: str | os.PathLike, record: dict) -> None:
    """Write a bench record as JSON (its folder created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
