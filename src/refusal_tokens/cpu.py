"""CPU speed-ups that change no number: the same floating-point operations, less memory traffic.

Both were found by profiling one training step of the default recipe (``bench/sft_throughput.py --profile``):
besides the matmuls, the step spent its time in element-wise passes over large fresh tensors.

- ``retain_freed_memory``: glibc returns every freed block above its mmap threshold (128 KiB, rising to at most
  32 MiB as blocks are freed) to the kernel, so each new activation, logits tile or gradient buffer of that size
  comes back as fresh pages that the kernel zero-fills on first touch. Raising the threshold to its 32 MiB ceiling
  and never trimming the heap keeps freed memory in the process for the next step. Allocation only: the results
  are bit-identical. No-op where the C library has no ``mallopt`` (macOS, musl).
- ``in_place_head_backward``: TRL's fused LM head (``trl.kernels.chunked_logprob``), on devices without Triton,
  turns each ``[tokens, 32,768]`` logits tile into its gradient with about a dozen element-wise passes, most into
  new tensors (two of them multiply by 1.0). When there is no temperature, logit scale, soft-cap or entropy
  gradient (the SFT loss), the same gradient is ``-g · exp(z - log Z)`` off the target and ``g · (1 - p_target)``
  on it: computed in place, with the same operations on every element (multiplying by a negated ``g`` is
  exact in IEEE arithmetic), so the gradients are bit-identical (tests/test_cpu.py). Any other case runs TRL's own
  tile code. The forward's transform (scale, soft-cap, temperature) returns the logits tile itself when all three
  are off, instead of two copies multiplied by 1.0 (also exact).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX = 4 MiB × 8)
TRIM_NEVER = 2**31 - 1  # bytes of free heap top kept before trimming (mallopt takes an int)


@functools.cache  # process-wide settings: applied once (find_library runs a subprocess)
def retain_freed_memory() -> bool:
    """Keep freed memory in the process (see the module docstring). True when glibc accepted both settings."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_NEVER))


def in_place_head_backward() -> bool:
    """Install the in-place logits-gradient tile in TRL's chunked LM head (see the module docstring); idempotent.
    True when installed (or already there); False when this TRL has no torch tile to replace."""
    try:
        from trl.kernels import chunked_logprob as kernel
    except ImportError:
        return False
    original = getattr(kernel, "_backward_tile", None)
    if original is None:
        return False
    if getattr(original, "in_place", False):
        return True

    def backward_tile(tile, tile_stride, targets, log_z, entropy, grad_logprobs, grad_entropy, vocab_start, n_cols,
                      logit_scale, softcap, inv_t, HAS_SOFTCAP, HAS_LOGPROB_GRAD, HAS_ENTROPY_GRAD, BLOCK_SIZE):
        plain = (logit_scale == 1.0 and inv_t == 1.0 and not HAS_SOFTCAP and HAS_LOGPROB_GRAD
                 and not HAS_ENTROPY_GRAD and tile.dtype == kernel.torch.float32)
        if not plain:
            return original(tile, tile_stride, targets, log_z, entropy, grad_logprobs, grad_entropy, vocab_start,
                            n_cols, logit_scale, softcap, inv_t, HAS_SOFTCAP, HAS_LOGPROB_GRAD, HAS_ENTROPY_GRAD,
                            BLOCK_SIZE)
        torch = kernel.torch
        # TRL: log_p = z - log_z; p = exp(log_p); grad = 0 + g·(1[j = target] - p); grad·inv_t·logit_scale (both 1)
        p = tile.sub_(log_z.unsqueeze(-1)).exp_()  # in place: the same sub and exp as TRL's exp(z - log_z)
        local = targets - vocab_start
        rows = torch.nonzero((local >= 0) & (local < n_cols)).squeeze(-1)
        cols = local[rows]
        on_target = grad_logprobs[rows] * (1.0 - p[rows, cols]) + 0.0  # + 0.0: TRL's 0 + (-0.0) is +0.0
        # off the target: g·(0 - p) = g·(-p) = p·(-g), exact; TRL's 0 + that only turns a -0.0 into +0.0, and
        # p·(-g) is -0.0 only where g ≥ 0 (the loss's g = -1/tokens is negative): then the + 0.0 pass too
        tile.mul_(grad_logprobs.neg().unsqueeze(-1))
        if (grad_logprobs >= 0).any():
            tile.add_(0.0)
        tile[rows, cols] = on_target

    transform = kernel._torch_transform

    def forward_transform(z, logit_scale, softcap, inv_t, HAS_SOFTCAP):
        if logit_scale == 1.0 and inv_t == 1.0 and not HAS_SOFTCAP:
            return z  # x · 1.0 is x: the forward tile only reads z
        return transform(z, logit_scale, softcap, inv_t, HAS_SOFTCAP)

    backward_tile.in_place = True
    backward_tile.originals = (original, transform)
    kernel._backward_tile = backward_tile
    kernel._torch_transform = forward_transform
    return True


def restore_head_backward() -> None:
    """Undo ``in_place_head_backward`` (tests compare both); a no-op where this TRL has no torch tile."""
    try:
        from trl.kernels import chunked_logprob as kernel
    except ImportError:
        return
    if getattr(getattr(kernel, "_backward_tile", None), "in_place", False):
        kernel._backward_tile, kernel._torch_transform = kernel._backward_tile.originals
