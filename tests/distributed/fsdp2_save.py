"""Run under torchrun by tests/test_distributed.py: the tiny model sharded with FSDP2 over gloo on the CPU (each
decoder block, then the root, as accelerate's TRANSFORMER_BASED_WRAP does), one AdamW step, and the final folder
written the way ``train.run`` writes it: ``train.full_state_dict`` through accelerate's own FSDP2 branch of
``Accelerator.get_state_dict``, then ``save_pretrained`` on rank 0. Rank 0 also takes the same step on an
unsharded copy (``REF``), so the test can compare the gathered weights with the ones they should be.

    torchrun --standalone --nproc_per_node 2 tests/distributed/fsdp2_save.py INIT_DIR OUT_DIR REF_DIR

(accelerate itself enables FSDP only for GPU-like process groups, so this drives torch's FSDP2 directly.)
"""

import copy
import sys
from types import SimpleNamespace

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import DistributedType
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM, AutoTokenizer

from refusal_tokens import train


def step(model, batch):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(**batch, labels=batch["input_ids"]).loss.backward()
    optimizer.step()


if __name__ == "__main__":
    init, out, ref = sys.argv[1:4]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(init)
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    reference = copy.deepcopy(model) if rank == 0 else None
    # the same rows on every rank: FSDP averages the ranks' gradients, so the step equals the unsharded one
    batch = tokenizer(["[refuse] I cannot help with that.", "[respond] Mix flour and water."], return_tensors="pt",
                      padding=True)
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    assert type(model.model.layers[0].mlp.up_proj.weight).__name__ == "DTensor"  # sharded, not replicated
    step(model, batch)
    fsdp2 = SimpleNamespace(distributed_type=DistributedType.FSDP, is_fsdp2=True)
    trainer = SimpleNamespace(model=model, is_deepspeed_enabled=False,
                              accelerator=SimpleNamespace(get_state_dict=lambda m: Accelerator.get_state_dict(fsdp2, m)))
    state_dict = train.full_state_dict(trainer)  # collective: every rank calls it
    if rank == 0:
        model.save_pretrained(out, state_dict=state_dict, safe_serialization=True)
        step(reference, batch)
        reference.save_pretrained(ref, safe_serialization=True)
    dist.barrier()
    dist.destroy_process_group()
