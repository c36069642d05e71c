"""The exact CPU speed-ups (refusal_tokens.cpu): same numbers as TRL's own code, to the last bit."""

import math
import platform

import pytest
import torch

from refusal_tokens import cpu, train
from tests.test_train import cfg, setup  # noqa: F401  (the tiny model fixture)

kernel = pytest.importorskip("trl.kernels.chunked_logprob")


@pytest.fixture
def in_place():
    cpu.in_place_head_backward()
    yield kernel._backward_tile
    cpu.restore_head_backward()


def trl_tile():
    cpu.restore_head_backward()
    return kernel._backward_tile


def tile_args(tile, targets, log_z, g, vocab_start=0, **overrides):
    args = dict(tile=tile, tile_stride=tile.stride(0), targets=targets, log_z=log_z, entropy=log_z, grad_logprobs=g,
                grad_entropy=log_z, vocab_start=vocab_start, n_cols=tile.shape[1], logit_scale=1.0, softcap=1.0,
                inv_t=1.0, HAS_SOFTCAP=False, HAS_LOGPROB_GRAD=True, HAS_ENTROPY_GRAD=False, BLOCK_SIZE=1024)
    return {**args, **overrides}


def test_the_tile_is_the_softmax_gradient_by_hand(in_place):
    # one token, logits ln 1, ln 2, ln 1 (Z = 4, log Z = ln 4), target 1, d loss / d log p = g = -0.5:
    # p = 1/4, 2/4, 1/4 → gradient -g·p off the target = 0.125, 0.125; on it g·(1 - 0.5) = -0.25
    tile = torch.tensor([[0.0, math.log(2), 0.0]])
    in_place(**tile_args(tile, torch.tensor([1]), torch.tensor([math.log(4)]), torch.tensor([-0.5])))
    assert torch.allclose(tile, torch.tensor([[0.125, -0.25, 0.125]]))


def test_the_tile_equals_trls_bit_for_bit(in_place):
    torch.manual_seed(0)
    n, width = 6, 40
    logits = torch.randn(n, 64) * 3
    logits[0, 5] = 200.0  # p(target) rounds to exactly 1: TRL's gradient there is +0.0
    logits[1, :] = -200.0
    logits[1, 7] = 0.0  # every other p underflows to 0
    targets = torch.tensor([5, 7, 3, 39, 50, 0])  # 50 lies outside this tile (columns 0–39)
    log_z = torch.logsumexp(logits[:, :width], -1)
    for g in (torch.full((n,), -1 / n), torch.tensor([-0.5, 0.0, -0.25, -1.0, 0.0, -2.0]),  # the loss's; zeros;
              torch.tensor([-0.5, 0.0, 0.25, -1.0, 0.0, 2.0])):                              # any sign
        check_tile(logits, width, targets, log_z, g)


def check_tile(logits, width, targets, log_z, g):
    for strided in (False, True):  # the last vocab chunk is a strided view of TRL's buffer
        theirs = logits[:, :width].clone() if not strided else logits.clone()[:, :width]
        ours = logits[:, :width].clone() if not strided else logits.clone()[:, :width]
        trl_tile()(**tile_args(theirs, targets, log_z, g))
        cpu.in_place_head_backward()
        kernel._backward_tile(**tile_args(ours, targets, log_z, g))
        assert torch.equal(ours, theirs)
        assert torch.equal(torch.signbit(ours), torch.signbit(theirs))  # zeros keep TRL's sign too
        assert ours[1, 0] == 0 and (ours[0, 5] == 0 or g[0] == 0)


def test_other_cases_run_trls_own_tile(in_place):
    torch.manual_seed(1)
    logits, targets, log_z, g = torch.randn(3, 8), torch.tensor([1, 2, 3]), torch.zeros(3), torch.full((3,), -0.3)
    for overrides in ({"inv_t": 0.5}, {"HAS_ENTROPY_GRAD": True}, {"HAS_SOFTCAP": True, "softcap": 30.0}):
        ours, theirs = logits.clone(), logits.clone()
        in_place(**tile_args(ours, targets, log_z, g, **overrides))
        trl_tile()(**tile_args(theirs, targets, log_z, g, **overrides))
        cpu.in_place_head_backward()
        assert torch.equal(ours, theirs), overrides


def test_the_head_gives_the_same_loss_and_gradients_with_and_without(in_place):
    from trl.kernels import ChunkedLogProbFunction

    torch.manual_seed(2)
    vocab = 70_000  # three vocab chunks of TRL's 32,768: two full, one strided remainder
    hidden, weight = torch.randn(5, 8), torch.randn(vocab, 8)
    targets = torch.tensor([0, 32_767, 32_768, 69_999, 12])
    results = {}
    for on in (True, False):
        if on:
            cpu.in_place_head_backward()
        else:
            trl_tile()
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        log_probs, *_ = ChunkedLogProbFunction.apply(h, w, None, targets, 1.0, 32_768, None, 1.0,
                                                     ("log_probs", "entropy", "is_top1"))
        (-log_probs.sum() / 5).backward()
        results[on] = (log_probs.detach(), h.grad, w.grad)
    assert all(torch.equal(a, b) for a, b in zip(results[True], results[False]))


def test_install_is_idempotent_and_restorable():
    original, transform = kernel._backward_tile, kernel._torch_transform
    assert cpu.in_place_head_backward() and cpu.in_place_head_backward()
    assert kernel._backward_tile.originals == (original, transform)
    cpu.restore_head_backward()
    assert (kernel._backward_tile, kernel._torch_transform) == (original, transform)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_glibc_accepts_the_allocator_settings():
    assert cpu.retain_freed_memory() is True


def test_training_is_bit_identical_with_and_without(setup, tmp_path):  # noqa: F811
    weights = {}
    for on in (True, False):
        prepared = train.build_trainer(cfg(setup, tmp_path / str(on), padding_free=True, freeze_layers=1, max_steps=3,
                                           curve_every=0, exact_cpu_speedups=on))
        assert getattr(kernel._backward_tile, "in_place", False) is on
        prepared.trainer.train()
        weights[on] = {k: v.clone() for k, v in prepared.trainer.model.state_dict().items()}
    assert weights[True].keys() == weights[False].keys()
    assert all(torch.equal(weights[True][k], weights[False][k]) for k in weights[True])
    cpu.restore_head_backward()


def test_the_setting_is_checked_at_the_door(setup, tmp_path):  # noqa: F811
    from refusal_tokens.errors import DataError

    with pytest.raises(DataError, match="exact_cpu_speedups: Input should be a valid boolean"):
        cfg(setup, tmp_path, exact_cpu_speedups="fast")


def test_install_and_restore_tolerate_a_trl_without_the_torch_tile(monkeypatch):
    # a TRL without trl.kernels.chunked_logprob (not on the package, None in sys.modules: the import raises
    # ImportError), then one whose module lacks _backward_tile: installing reports False, restoring is a no-op,
    # neither raises
    import sys
    import types

    monkeypatch.delattr(sys.modules["trl.kernels"], "chunked_logprob")
    monkeypatch.setitem(sys.modules, "trl.kernels.chunked_logprob", None)
    assert cpu.in_place_head_backward() is False
    cpu.restore_head_backward()
    bare = types.ModuleType("trl.kernels.chunked_logprob")
    monkeypatch.setitem(sys.modules, "trl.kernels.chunked_logprob", bare)
    monkeypatch.setattr(sys.modules["trl.kernels"], "chunked_logprob", bare, raising=False)
    assert cpu.in_place_head_backward() is False
    cpu.restore_head_backward()
    assert not hasattr(bare, "_backward_tile")
