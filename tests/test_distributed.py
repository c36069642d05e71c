"""More than one process, on the CPU: training through the real entry point under torchrun (DDP over gloo), FSDP2's
full-weight gather and save, and the paper profile end to end on a tiny template-less Llama.

Each test launches real processes (≈10–20 s each on 2 cores); nothing needs a GPU or a download.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from refusal_tokens import models, paper_profile, tokens

ROOT = Path(__file__).resolve().parents[1]
HELPERS = Path(__file__).resolve().parent / "distributed"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


@pytest.fixture(scope="module")
def inputs(tiny_single):
    return tiny_single


def launch(args, cwd, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def weights(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def scheme_rows(folder):
    from transformers import AutoTokenizer

    return tokens.require_tokens(AutoTokenizer.from_pretrained(folder), "single")


def test_two_processes_save_one_loadable_model_and_resume(inputs, tmp_path):
    import torch

    work = tmp_path / "work"  # each process's working directory: nothing may land here
    work.mkdir()
    config = {"name": "ddp", "scheme": "single", "model": str(inputs / "single-words"),
              "train_file": str(inputs / "train.jsonl"), "validation_file": str(inputs / "validation.jsonl"),
              "output_dir": str(tmp_path / "out"), "checkpoint_dir": str(tmp_path / "ckpt"), "device": "cpu",
              "learning_rate": 3e-3, "max_steps": 6, "save_steps": 2, "per_device_train_batch_size": 4,
              "max_length": 64, "eval_rows": 8, "curve_every": 3}  # 4 rows × 2 processes = 8 rows a step
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    before = files_under(tmp_path)

    # 1. killed at the end of step 3: checkpoint-2 was written (once), no model folder
    killed = launch([*TORCHRUN, str(HELPERS / "interrupted_train.py"), str(tmp_path / "config.yaml"), "3"], work)
    assert killed.returncode != 0 and "interrupted at step 3" in killed.stderr
    assert (tmp_path / "ckpt" / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (tmp_path / "out").exists()

    # 2. the real entry point resumes it and finishes
    done = launch([*TORCHRUN, "-m", "refusal_tokens.train", "--config", str(tmp_path / "config.yaml")], work)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["global_batch"] == 8 and metrics["steps"] == 6
    assert metrics["resumed_from"].endswith("checkpoint-2")
    assert done.stdout.count('"variant": "ddp"') == 1  # the metrics are printed by the main process only

    # 3. one output folder, the checkpoints cleaned up, and nothing written anywhere else
    written = files_under(tmp_path) - before
    assert {p.split("/")[0] for p in written} == {"out", "ckpt"} and files_under(work) == set()
    assert not [p for p in written if Path(p).name.startswith(".")]  # no temporary folder left behind
    assert files_under(tmp_path / "ckpt") == {"DONE", "config.json", "README.md"}
    for name in ("model.safetensors", "tokenizer.json", "params.json", "training_log.json", "README.md"):
        assert (tmp_path / "out" / name).is_file(), name
    curve = json.loads((tmp_path / "out" / "training_log.json").read_text())["curve"]
    assert [p["step"] for p in curve] == [2, 3, 6]  # evaluated (collectively) at the resumed start and every 3 steps

    # 4. the weights load, moved, and so did the scheme tokens' rows
    start, end = weights(inputs / "single-words"), weights(tmp_path / "out")
    assert start.keys() == end.keys()
    assert any(not torch.equal(start[k], end[k]) for k in start)
    embed = "model.embed_tokens.weight"
    for row in scheme_rows(tmp_path / "out"):
        assert not torch.equal(start[embed][row], end[embed][row]), row


def test_fsdp2_shards_gather_into_one_loadable_folder(inputs, tmp_path):
    """accelerate runs FSDP only on GPU-like devices, so here torch's FSDP2 shards the model over gloo directly and
    the final weights go through train.full_state_dict (accelerate's FSDP2 branch) and save_pretrained."""
    import torch

    run = launch([*TORCHRUN, str(HELPERS / "fsdp2_save.py"), str(inputs / "single-words"), str(tmp_path / "out"),
                  str(tmp_path / "ref")], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    start, gathered, reference = (weights(inputs / "single-words"), weights(tmp_path / "out"),
                                  weights(tmp_path / "ref"))
    assert gathered.keys() == reference.keys() == start.keys()
    for key in reference:
        assert torch.allclose(gathered[key], reference[key], atol=1e-6), key  # the full tensors, not one shard
    assert any(not torch.equal(start[k], gathered[k]) for k in start)


def test_paper_profile_runs_end_to_end_on_a_tiny_template_less_llama(tmp_path):
    import torch
    from transformers import AutoTokenizer

    out = tmp_path / "paper"
    run = launch([sys.executable, "-m", "refusal_tokens.paper_profile", str(out)], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "--config configs/paper_llama3_8b.yaml" in run.stdout  # the profile file itself, paths set on top
    assert AutoTokenizer.from_pretrained(out / "hub" / "tiny-llama3-base").chat_template is None
    folder = out / "models" / "tiny-llama3" / "sft" / "paper_single"
    assert AutoTokenizer.from_pretrained(folder).chat_template == models.CHAT_TEMPLATES["llama3"]
    params = json.loads((folder / "params.json").read_text())
    profile = yaml.safe_load((ROOT / "configs" / "paper_llama3_8b.yaml").read_text())
    for key in ("learning_rate", "lr_scheduler_type", "warmup_ratio", "num_train_epochs", "max_length",
                "global_batch_size", "gradient_checkpointing", "bf16"):
        assert params[key] == profile[key], key
    assert params["learning_rate"] == 2e-5 and params["device"] == "cpu"
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = paper_profile.ROWS
    assert metrics["global_batch"] == 128 and metrics["steps"] == math.ceil(rows / 128) == 2
    probe = metrics["precision_probe"]  # bf16: auto on a CPU: the probe decides, and its finding is recorded
    assert metrics["precision"] == ("bf16" if probe["bf16"] else "fp32")
    start = weights(out / "models" / "tiny-llama3" / "init" / "single-words")
    end = weights(folder)
    embed = "model.embed_tokens.weight"
    for row in scheme_rows(folder):
        assert not torch.equal(start[embed][row], end[embed][row]), row  # lr 2e-5 on fp32 master weights lands


def test_paper_profile_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert paper_profile.main([str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err and files_under(tmp_path) == {"keep.txt"}
