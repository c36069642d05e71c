"""What the scoring and sweep benchmark scripts share: the CoCoNot calibration prompts and the model."""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


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
