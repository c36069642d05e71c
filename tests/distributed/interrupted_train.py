"""Run under torchrun by tests/test_distributed.py: the training entry point's config, with every process raising
at the end of step ``STOP`` (after the checkpoint of an earlier step was written), as a killed job would leave it.

    torchrun --standalone --nproc_per_node 2 tests/distributed/interrupted_train.py CONFIG.yaml STOP
"""

import sys
from pathlib import Path

import yaml
from transformers import TrainerCallback

from refusal_tokens import train


class Interrupt(Exception):
    pass


class StopAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Interrupt(f"interrupted at step {self.step}")


if __name__ == "__main__":
    config, stop = sys.argv[1], int(sys.argv[2])
    train.run(train.TrainConfig.from_mapping(yaml.safe_load(Path(config).read_text())), callbacks=[StopAt(stop)])
