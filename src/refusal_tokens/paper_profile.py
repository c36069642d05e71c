"""The paper profile end to end on a tiny model: the code a GPU user runs for Llama-3-8B, on a CPU in seconds.

    python -m refusal_tokens.paper_profile build/paper_profile                  # one process
    python -m refusal_tokens.paper_profile build/paper_profile --processes 2    # torchrun: DDP over gloo

Each step is the pipeline's own code; only the model's size and the data are stand-ins:

1. a tiny randomly initialised Llama with Llama-3 *base* special tokens and **no chat template**, saved like a Hub
   checkout (``<out>/hub/tiny-llama3-base``);
2. ``models.prepare_base`` with the profile's model settings (``chat_template: llama3``, Llama-3's bos / eos, no
   system-prompt stripping) and ``model.source: local`` in place of ``hub``, then ``models.prepare_tokens``
   (single scheme, ``words`` init): the profile's step 2, in one process;
3. 256 toy rows tagged for the single scheme (a stand-in for UltraChat + CoCoNot: the data stage is not run);
4. the profile's training command, ``python -m refusal_tokens.train --config configs/paper_llama3_8b.yaml``, with
   ``--set`` for the paths and ``device=cpu`` only: lr 2e-5, cosine, warmup 0.1, one epoch, max length 2048, a
   global batch of 128 rows (4 per process × processes × accumulation), gradient checkpointing and ``bf16: auto``
   (bf16 autocast on CUDA; on a CPU only where native bf16 measures faster, else fp32) all come from the file.
   256 rows / 128 per step = 2 optimizer steps.

The command it runs is printed; at scale the same command takes the real paths and no ``device=cpu``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

PROFILE = "configs/paper_llama3_8b.yaml"
ROWS, VALIDATION = 256, 16
# The profile's step 1 (configs/paper_llama3_8b.yaml), with a local folder in place of the Hub id.
MODEL_PARAMS = {"source": "local", "chat_template": "llama3", "bos_token": "<|begin_of_text|>",
                "eos_token": "<|end_of_text|>", "strip_default_system_prompt": False}


def prepare(out: Path) -> dict[str, str]:
    """Steps 1–3; returns the ``--set`` overrides (paths and device) for the profile's training command."""
    from . import models, tiny

    records = tiny.toy_chat_records(ROWS + VALIDATION)
    hub = tiny.save_tiny_base(out / "hub" / "tiny-llama3-base", [r.prompt + " " + r.response for r in records],
                              style="llama3_base", provenance=False)
    root = out / "models" / "tiny-llama3"
    base = models.prepare_base({**MODEL_PARAMS, "local_path": str(hub)}, root / "base")
    init = models.prepare_tokens(base, "single", "words", root / "init" / "single-words")
    train_file, validation_file = tiny.write_tagged_splits(records, "single", out / "data" / "paper" / "single",
                                                           VALIDATION)
    return {"model": str(init), "train_file": str(train_file), "validation_file": str(validation_file),
            "output_dir": str(root / "sft" / "paper_single"),
            "checkpoint_dir": str(out / "checkpoints" / "tiny-llama3" / "paper_single"), "device": "cpu"}


def command(overrides: dict[str, str], processes: int, profile: str = PROFILE) -> list[str]:
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
              if processes > 1 else [sys.executable])
    sets = [part for key, value in overrides.items() for part in ("--set", f"{key}={json.dumps(value)}")]
    return [*launch, "-m", "refusal_tokens.train", "--config", profile, *sets]


def main(argv: list[str] | None = None) -> int:
    from .notebook import project_root

    parser = argparse.ArgumentParser(description="Run the paper profile end to end on a tiny template-less Llama.")
    parser.add_argument("out", help="a new or empty folder for everything the run writes")
    parser.add_argument("--processes", type=int, default=1, help="> 1: launch training with torchrun (CPU, gloo)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    if args.processes < 1:
        print("error: --processes must be ≥ 1", file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()):
        print(f"error: {out} is not empty; give a new folder", file=sys.stderr)
        return 2
    cmd = command(prepare(out), args.processes)
    print("+ " + shlex.join(cmd), flush=True)
    return subprocess.run(cmd, cwd=project_root(Path(__file__).parent)).returncode


if __name__ == "__main__":
    raise SystemExit(main())
