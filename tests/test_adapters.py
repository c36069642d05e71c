"""Low-rank adapters on the trained blocks (refusal_tokens.adapters), on the tiny random llama (2 blocks)."""

import json

import pytest
import torch
from torch import nn

from refusal_tokens import adapters, train
from refusal_tokens.errors import DataError

from .test_train import cfg


@pytest.fixture
def model(tiny_single):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_single / "single-words", dtype=torch.float32).eval()


def ids(model):
    return torch.arange(3, 13).view(1, 10) % model.config.vocab_size


def test_adapters_wrap_the_seven_layers_of_each_trained_block_and_start_as_the_model(model):
    before = model(ids(model)).logits
    assert adapters.add_lora(model, 1, rank=4, alpha=8.0) == 7  # block 1 of 2: q, k, v, o, gate, up, down
    wrapped = [m for m in model.modules() if isinstance(m, adapters.LoRALinear)]
    assert len(wrapped) == 7 and all(not m.base.weight.requires_grad for m in wrapped)
    assert all(m.lora_A.shape[0] == 4 and m.lora_B.shape[1] == 4 and m.scale == 2.0 for m in wrapped)
    assert not any(isinstance(m, adapters.LoRALinear) for m in model.get_decoder().layers[0].modules())
    assert torch.equal(model(ids(model)).logits, before)  # B = 0: step 0 is the model as loaded


def test_backward_reaches_the_adapters_not_the_wrapped_weights(model):
    adapters.add_lora(model, 0, rank=2, alpha=2.0)
    model(ids(model)).logits.sum().backward()
    wrapped = [m for m in model.modules() if isinstance(m, adapters.LoRALinear)]
    assert all(m.base.weight.grad is None for m in wrapped)
    assert all(m.lora_B.grad is not None and m.lora_B.grad.abs().sum() > 0 for m in wrapped)
    assert model.get_input_embeddings().weight.grad is not None  # the (tied) embedding still trains


def test_merging_folds_the_update_into_plain_linears_with_the_same_outputs(model):
    adapters.add_lora(model, 0, rank=2, alpha=4.0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, adapters.LoRALinear):
                m.lora_B.normal_(0, 0.05)
    wrapped_logits = model(ids(model)).logits
    layer = model.get_decoder().layers[0].self_attn.q_proj
    expected = layer.base.weight + 2.0 * layer.lora_B @ layer.lora_A  # W + (alpha / r) B A, by hand
    assert adapters.merge(model) == 14
    assert type(model.get_decoder().layers[0].self_attn.q_proj) is nn.Linear
    assert torch.allclose(model.get_decoder().layers[0].self_attn.q_proj.weight, expected)
    assert torch.allclose(model(ids(model)).logits, wrapped_logits, atol=1e-5)
    assert not any("lora" in k for k in model.state_dict())


def test_bad_adapter_settings_are_refused(model):
    with pytest.raises(DataError, match="lora_rank must be ≥ 1"):
        adapters.add_lora(model, 0, rank=0, alpha=8.0)
    for bad in ((0, 8.0), (4, 0.0), (2.5, 8.0)):
        with pytest.raises(DataError, match="integer rank ≥ 1 and an alpha > 0"):
            train.check_lora(bad)
    for layer in model.get_decoder().layers:  # stands for blocks whose layers are named otherwise
        for parent in list(layer.modules()):
            for name, _ in list(parent.named_children()):
                if name in adapters.TARGETS:
                    setattr(parent, name, nn.Identity())
    with pytest.raises(DataError, match="block 0 has none of the layers"):
        adapters.add_lora(model, 0, rank=2, alpha=2.0)


def test_a_run_with_adapters_saves_a_plain_model_whose_frozen_and_trained_blocks_moved_as_expected(tiny_single,
                                                                                                   tmp_path):
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(tiny_single / "single-words")
    metrics = train.run(cfg(tiny_single, tmp_path, max_steps=3, curve_every=0, freeze_layers=1), lora=(4, 8.0))
    assert (metrics["lora_rank"], metrics["lora_alpha"]) == (4, 8.0)
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "out")  # loads as a plain model: no adapter keys
    b_layers, a_layers = before.get_decoder().layers, after.get_decoder().layers
    assert all(torch.equal(p, q) for p, q in zip(b_layers[0].parameters(), a_layers[0].parameters()))
    moved = [n for (n, p), q in zip(b_layers[1].named_parameters(), a_layers[1].parameters()) if not torch.equal(p, q)]
    assert "self_attn.q_proj.weight" in moved and "mlp.down_proj.weight" in moved  # the merged updates
    assert not torch.equal(before.get_input_embeddings().weight[-2:], after.get_input_embeddings().weight[-2:])
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["lora_rank"] == 4
