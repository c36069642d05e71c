"""Low-rank adapters (LoRA; Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv 2106.09685) on
the trained decoder blocks: a cheaper alternative to training those blocks' weights in full.

With ``train.run(cfg, lora=(r, alpha))`` (a bench option, not a pipeline parameter) every linear layer of the blocks
that train (those above ``freeze_layers``: attention q/k/v/o and the MLP's gate/up/down) keeps its weight ``W``
frozen and learns ``y = x Wᵀ + (alpha / r) · (x Aᵀ) Bᵀ`` with ``A`` (r × in) and ``B`` (out × r), ``B`` starting at
zero, so step 0 is the model as loaded. The tied embedding / LM head still trains in full (it holds the scheme
tokens' rows), and the norms of the trained blocks train as before. What it saves: backward through a block still
computes the gradient of its input (the blocks below, the head and the adapters need it) but no longer the gradient
of its weights, about a third of a block's work (``bench/sft_throughput.py``, setting ``freeze15_nodw``, measures
that ceiling; the adapters' own matmuls are r / 576 of a layer's for SmolLM2's width).

Before saving, ``merge`` folds each adapter into its weight (``W + (alpha / r) B A``) and puts a plain
``nn.Linear`` back, so the saved folder is an ordinary transformers model: every later stage loads it unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .errors import DataError

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update (see the module docstring)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, seed: int = 0):
        super().__init__()
        self.base = base
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)
        self.scale = alpha / rank
        generator = torch.Generator().manual_seed(seed)
        a = torch.empty(rank, base.in_features, dtype=base.weight.dtype)
        bound = 1 / math.sqrt(base.in_features)  # nn.Linear's (and LoRA's) kaiming-uniform bound with a = √5
        a.uniform_(-bound, bound, generator=generator)
        self.lora_A = nn.Parameter(a.to(base.weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, dtype=base.weight.dtype,
                                               device=base.weight.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.t().to(x.dtype)) @ (self.lora_B.t().to(x.dtype) * self.scale)

    def merged(self) -> nn.Linear:
        """``self.base`` with the update folded into its weight (in place; returns it)."""
        with torch.no_grad():
            self.base.weight += (self.lora_B @ self.lora_A * self.scale).to(self.base.weight.dtype)
        self.base.weight.requires_grad_(True)
        return self.base


def add_lora(model, first_block: int, rank: int, alpha: float, seed: int = 0) -> int:
    """Wrap every target linear layer of the decoder blocks ``first_block`` … last (``TARGETS``) in a
    ``LoRALinear``; returns the number of layers wrapped. Raises DataError when a block has none of them."""
    if rank < 1:
        raise DataError(f"lora_rank must be ≥ 1 to add adapters, got {rank}")
    layers = model.get_decoder().layers
    wrapped = 0
    for index, layer in enumerate(layers):
        if index < first_block:
            continue
        found = 0
        for parent in layer.modules():
            for name, child in list(parent.named_children()):
                if name in TARGETS and isinstance(child, nn.Linear):
                    setattr(parent, name, LoRALinear(child, rank, alpha, seed=seed * 100_003 + wrapped))
                    wrapped += 1
                    found += 1
        if not found:
            raise DataError(f"lora_rank: decoder block {index} has none of the layers {TARGETS}; this model's "
                            "blocks are named otherwise, so adapters cannot be added")
    return wrapped


def merge(model) -> int:
    """Fold every ``LoRALinear`` of ``model`` into a plain ``nn.Linear`` (in place); returns how many."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                setattr(parent, name, child.merged())
                count += 1
    return count
