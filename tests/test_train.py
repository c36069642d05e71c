"""SFT on a tiny random llama (2 layers, built here): seconds, no download."""

import json
import math
from pathlib import Path

import pytest
import yaml

from refusal_tokens import tagging, tokens, train
from refusal_tokens.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tiny_single):
    return tiny_single


def cfg(setup, tmp_path, **overrides) -> train.TrainConfig:
    values = dict(name="t", scheme="single", model=str(setup / "single-words"), train_file=str(setup / "train.jsonl"),
                  validation_file=str(setup / "validation.jsonl"), output_dir=str(tmp_path / "out"),
                  checkpoint_dir=str(tmp_path / "ckpt"), learning_rate=3e-3, max_steps=12,
                  per_device_train_batch_size=8, max_length=64, curve_every=4, save_steps=4, eval_rows=8)
    values.update(overrides)
    return train.TrainConfig.from_mapping(values)


def test_tokens_are_added_once_and_stable_after_save_and_load(setup, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(setup / "base")
    size = len(tok)
    ids = tokens.add_tokens(tok, "single")
    assert tokens.add_tokens(tok, "single") == ids and len(tok) == size + 2
    assert ids == [size, size + 1]
    assert tok.encode("[refuse]", add_special_tokens=False) == [ids[0]]
    assert tok.encode(" [refuse]", add_special_tokens=False)[-1:] == [ids[0]]  # one id with a leading space too
    reloaded = AutoTokenizer.from_pretrained(setup / "single-words")
    assert tokens.require_tokens(reloaded, "single") == ids
    provenance = json.loads((setup / "single-words" / "provenance.json").read_text())
    assert provenance["token_ids"] == {"[refuse]": ids[0], "[respond]": ids[1]}


def test_words_init_starts_rows_at_the_description_embedding(setup):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(setup / "base")
    model = AutoModelForCausalLM.from_pretrained(setup / "base")
    refuse, _ = tokens.resize_and_init(model, tok, "single", "words")
    embed = model.get_input_embeddings().weight
    pieces = tok.encode(tokens.INIT_WORDS["[refuse]"], add_special_tokens=False)
    assert torch.allclose(embed[refuse], embed[pieces].mean(0))
    assert model.get_output_embeddings().weight[refuse].data_ptr() == embed[refuse].data_ptr()  # tied


def test_training_lowers_loss_and_raises_p_token(setup, tmp_path):
    metrics = train.run(cfg(setup, tmp_path))
    curve = json.loads((tmp_path / "out" / "training_log.json").read_text())["curve"]
    assert [p["step"] for p in curve] == [0, 4, 8, 12]
    assert curve[-1]["eval_loss"] < curve[0]["eval_loss"]
    assert curve[-1]["mean_p_label"] > 2 * curve[0]["mean_p_label"]
    assert metrics["steps"] == 12 and metrics["precision"] == "fp32" and metrics["device"] == "cpu"
    out = tmp_path / "out"
    for name in ("model.safetensors", "tokenizer.json", "chat_template.jinja", "params.json", "metrics.json",
                 "README.md"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))  # no pickles in the published folder
    assert (tmp_path / "ckpt" / "DONE").is_file() and not list((tmp_path / "ckpt").glob("checkpoint-*"))


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_last_checkpoint(setup, tmp_path):
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:
                raise Interrupt()

    config = cfg(setup, tmp_path, max_steps=8, curve_every=0)
    with pytest.raises(Interrupt):
        train.run(config, callbacks=[StopAt()])
    assert (tmp_path / "ckpt" / "checkpoint-4").is_dir() and not (tmp_path / "out").exists()
    metrics = train.run(config)
    assert metrics["resumed_from"].endswith("checkpoint-4") and metrics["steps"] == 8


def test_checkpoints_of_another_configuration_are_not_resumed(setup, tmp_path):
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 5:
                raise Interrupt()

    with pytest.raises(Interrupt):
        train.run(cfg(setup, tmp_path, max_steps=8, curve_every=0), callbacks=[StopAt()])
    metrics = train.run(cfg(setup, tmp_path, max_steps=8, curve_every=0, learning_rate=1e-3))
    assert metrics["resumed_from"] is None


@pytest.mark.parametrize("overrides, message", [
    ({"scheme": "multi"}, r"scheme: Input should be 'none', 'single' or 'category' \(got 'multi'\)"),
    ({"learning_rate": 0}, r"learning_rate: Input should be greater than 0 \(got 0\)"),
    ({"device": "tpu"}, "device: Input should be 'auto', 'cpu' or 'cuda'"),
    ({"learning_rate": "2e-5", "max_steps": "x"}, r"1 problem\(s\)\n  - max_steps: Input should be a valid integer"),
])
def test_bad_training_parameters(setup, tmp_path, overrides, message):
    with pytest.raises(DataError, match=message):
        cfg(setup, tmp_path, **overrides)


def test_unknown_parameter_in_a_mapping():
    with pytest.raises(DataError, match=r"(?s)name: missing.*lr: unknown key"):
        train.TrainConfig.from_mapping({"lr": 1})


def test_a_model_without_the_scheme_tokens_is_refused(setup, tmp_path):
    with pytest.raises(DataError, match="lacks the 'single' scheme tokens"):
        train.run(cfg(setup, tmp_path, model=str(setup / "base")))


def test_data_of_another_scheme_is_refused(setup, tmp_path):
    with pytest.raises(DataError, match="holds scheme"):
        train.run(cfg(setup, tmp_path, scheme="category"))


def test_auroc_by_hand():
    assert train.auroc([0.9, 0.8, 0.3, 0.1], [True, False, True, False]) == 0.75
    assert train.auroc([0.5, 0.5], [True, False]) == 0.5
    assert train.auroc([0.5], [True]) is None


def test_cpu_settings_are_fp32_without_checkpointing(setup, tmp_path):
    args = train.sft_config(cfg(setup, tmp_path), 32, device="cpu")
    assert not args.bf16 and not args.activation_checkpointing and args.use_cpu
    assert args.completion_only_loss


def test_paper_profile_builds_its_full_trainer_config_without_weights():
    paper = train.TrainConfig.from_mapping(yaml.safe_load((ROOT / "configs" / "paper_llama3_8b.yaml").read_text()))
    rows = 200_000
    args = train.sft_config(paper, rows, device="cuda", processes=8, check_hardware=False)
    global_batch = args.per_device_train_batch_size * 8 * args.gradient_accumulation_steps
    assert global_batch == 128 and args.gradient_accumulation_steps == 4
    assert args.learning_rate == 2e-5 and args.lr_scheduler_type == "cosine" and args.num_train_epochs == 1
    assert args.warmup_steps == math.ceil(0.1 * math.ceil(rows / 128))
    assert args.max_length == 2048 and args.bf16 and args.activation_checkpointing
    with pytest.raises(DataError, match="not a multiple"):
        train.sft_config(paper, rows, device="cuda", processes=6, check_hardware=False)


def test_every_params_variant_resolves(monkeypatch):
    from refusal_tokens import config as C

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    checked = C.load(ROOT / "params.yaml")
    for variant, spec in params["train"]["variants"].items():
        config = train.config_from_params(checked, variant)
        assert config.scheme == spec["scheme"] and config.train_file.endswith(f"{spec['mix']}/{spec['scheme']}/train.jsonl")
        assert Path(config.model).name in params["model"]["inits"]
    with pytest.raises(DataError, match="unknown variant"):
        train.config_from_params(checked, "nope")


def test_new_token_lr_moves_only_the_new_rows(setup, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(setup / "single-words").get_input_embeddings().weight.detach().clone()
    train.run(cfg(setup, tmp_path, max_steps=3, curve_every=0, new_token_lr=1e-2))
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "out").get_input_embeddings().weight.detach()
    changed = (after - before).abs().sum(dim=1) > 0
    assert changed.nonzero().flatten().tolist() == [len(before) - 2, len(before) - 1]  # [refuse], [respond] only
    with pytest.raises(DataError, match="needs a scheme with tokens"):
        cfg(setup, tmp_path, scheme="none", new_token_lr=1e-2)


def test_padding_free_batches_keep_rows_apart_and_train_only_completions(setup, tmp_path):
    import torch

    prepared = train.build_trainer(cfg(setup, tmp_path, padding_free=True, max_steps=2, curve_every=0))
    assert prepared.args.padding_free and prepared.args.max_length is None  # fit_length dropped long rows already
    batch = next(iter(prepared.trainer.get_train_dataloader()))
    ids, positions, labels = batch["input_ids"], batch["position_ids"], batch["labels"]
    assert ids.shape[0] == 1 and "attention_mask" not in batch  # one concatenated row, no padding at all
    starts = (positions[0] == 0).nonzero().flatten().tolist()
    assert len(starts) == 8  # 8 rows, each restarting its positions at 0
    tokenizer = prepared.tokenizer
    for begin, end in zip(starts, starts[1:] + [ids.shape[1]]):
        row_ids, row_labels = ids[0, begin:end].tolist(), labels[0, begin:end].tolist()
        text = tokenizer.decode(row_ids)
        prompt_len = len(tokenizer.apply_chat_template([{"role": "user", "content": text.split("user\n")[1].split(
            tokenizer.eos_token)[0]}], add_generation_prompt=True, tokenize=True, return_dict=False))
        assert set(row_labels[:prompt_len]) == {-100}  # completion-only: no loss on the prompt's positions
        assert row_labels[prompt_len] == tokenizer.convert_tokens_to_ids(tagging.REFUSE if "steal" in text
                                                                         else tagging.RESPOND)
    # attention cannot cross rows: the packed forward equals each row's own forward (transformers builds the
    # block-diagonal mask from the restarting position ids when there is no attention mask and no cache)
    model = prepared.trainer.model.eval()
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=positions, use_cache=False).logits[0]
        for begin, end in zip(starts, starts[1:] + [ids.shape[1]]):
            alone = model(input_ids=ids[:, begin:end], use_cache=False).logits[0]
            assert torch.allclose(packed[begin:end], alone, atol=1e-5)


@pytest.mark.parametrize("padding_free", [True, False])
def test_the_head_projects_completion_positions_only_with_the_same_loss_and_gradients(setup, tmp_path, padding_free,
                                                                                    monkeypatch):
    import torch
    import trl.trainer.utils as trl_utils

    projected = []  # rows of hidden states TRL's chunked head projects, per call
    apply = trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply",
                        lambda hidden, *rest: projected.append(hidden.shape[0]) or apply(hidden, *rest))
    use_triton = trl_utils._use_triton
    results = {}
    for compact in (True, False):
        prepared = train.build_trainer(cfg(setup, tmp_path / str(compact), padding_free=padding_free, max_steps=1,
                                           curve_every=0, completion_head_only=compact))
        trainer = prepared.trainer
        batch = next(iter(trainer.get_train_dataloader()))
        projected.clear()
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        grads = [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]
        labels = batch["labels"][:, 1:]  # position t predicts label t + 1
        results[compact] = (loss.item(), grads, projected[:], int((labels != -100).sum()), labels.numel())
        assert trl_utils._use_triton is use_triton  # restored after the call
        if compact:  # evaluation goes through the same loss; a failing call restores the switch too
            projected.clear()
            trainer.prediction_step(trainer.model, batch, prediction_loss_only=True)
            assert projected == [results[True][3]]
            with pytest.raises(IndexError, match="shape of the mask"):  # raised in the compact head's indexing
                trainer.compute_loss(trainer.model, {**batch, "labels": batch["labels"][:, :1]})
            assert trl_utils._use_triton is use_triton
    loss, grads, rows, completions, positions = results[True]
    assert rows == [completions] and completions < positions  # CPU: only the labelled positions
    full_loss, full_grads, full_rows, _, _ = results[False]
    assert full_rows == [positions]  # TRL's CPU path: every position
    assert math.isclose(loss, full_loss, rel_tol=1e-5)
    assert len(grads) == len(full_grads) and all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, full_grads))
    with pytest.raises(DataError, match="completion_head_only: Input should be a valid boolean"):
        cfg(setup, tmp_path, completion_head_only="yes")


def test_frozen_bottom_blocks_do_not_move_and_the_tokens_still_learn(setup, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(setup / "single-words")
    train.run(cfg(setup, tmp_path, max_steps=2, curve_every=0, freeze_layers=1))
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    b_layers, a_layers = before.get_decoder().layers, after.get_decoder().layers
    assert all(torch.equal(p, q) for p, q in zip(b_layers[0].parameters(), a_layers[0].parameters()))
    assert any(not torch.equal(p, q) for p, q in zip(b_layers[1].parameters(), a_layers[1].parameters()))
    rows_before = before.get_input_embeddings().weight[-2:]
    assert not torch.equal(rows_before, after.get_input_embeddings().weight[-2:])  # [refuse], [respond] learn
    with pytest.raises(DataError, match="freeze_layers must lie"):
        train.freeze_bottom(after, 2)  # the tiny model has 2 blocks: at least one must train


def test_category_auroc_compares_refusals_with_their_own_category_only():
    rows = [{"category": "A", "should_refuse": True, "p_refusal": 0.6},
            {"category": "A", "should_refuse": False, "p_refusal": 0.7},   # A's contrast answer: ranked above
            {"category": "general", "should_refuse": False, "p_refusal": 0.0},
            {"category": "B", "should_refuse": True, "p_refusal": 0.9}]
    # against every answer A would score 0.5 (one answer above, one below); against its own contrast row, 0
    assert train.category_auroc(rows) == {"A": 0.0, "B": None}


def test_bf16_training_keeps_fp32_master_weights_so_small_updates_land(setup, tmp_path):
    """The paper profile trains in bf16 at lr 2e-5: with bf16 parameters most such updates round away (bf16 has 8
    mantissa bits, so a weight of 0.02 moves only in steps of ≈1e-4). Weights must stay fp32 under bf16 autocast."""
    import torch
    from transformers import AutoModelForCausalLM

    paper = train.TrainConfig.from_mapping(yaml.safe_load((ROOT / "configs" / "paper_llama3_8b.yaml").read_text()))
    assert train.master_dtype(paper, "cuda") == torch.float32  # the GPU profile too, not only this CPU
    prepared = train.build_trainer(cfg(setup, tmp_path, bf16=True, learning_rate=2e-5, max_steps=2, curve_every=0))
    assert prepared.args.bf16
    assert all(p.dtype == torch.float32 for p in prepared.trainer.model.parameters())
    before = AutoModelForCausalLM.from_pretrained(setup / "single-words").get_decoder().layers[0].mlp.up_proj.weight
    train.run(cfg(setup, tmp_path, bf16=True, learning_rate=2e-5, max_steps=2, curve_every=0))
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "out").get_decoder().layers[0].mlp.up_proj.weight
    moved = (after != before).float().mean().item()
    assert moved > 0.9  # in bf16 parameters, an Adam step of ≈2e-5 leaves most weights where they were


def test_gpu_profile_overrides_name_existing_params():
    """configs/gpu.overrides (make study-gpu) may only override keys params.yaml has, with values of their type."""
    import yaml

    from refusal_tokens.notebook import project_root

    root = project_root()
    params = yaml.safe_load((root / "params.yaml").read_text())
    lines = [line.strip() for line in (root / "configs" / "gpu.overrides").read_text().splitlines()]
    overrides = [line for line in lines if line and not line.startswith("#")]
    assert any(o.startswith("train.common.device=cuda") for o in overrides)
    for line in overrides:
        key, value = line.split("=", 1)
        node = params
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"{key}: not in params.yaml"
            node = node[part]
        new = yaml.safe_load(value)
        assert type(new) is type(node) or {type(new), type(node)} <= {int, float}, (key, node, new)


def test_bf16_auto_decides_by_flags_and_probe():
    from refusal_tokens.train import cpu_bf16_pays

    def never():
        raise AssertionError("no probe without a native bf16 flag")

    assert cpu_bf16_pays({"avx2", "fma"}, probe=never) == {"bf16": False, "flags": [], "speedup": None}
    assert cpu_bf16_pays({"avx512_bf16"}, probe=lambda: 2.0) == {"bf16": True, "flags": ["avx512_bf16"], "speedup": 2.0}
    assert cpu_bf16_pays({"amx_bf16"}, probe=lambda: 1.1)["bf16"] is False  # native but not faster: stay fp32


def test_bf16_setting_is_validated_and_resolved(tmp_path):
    from refusal_tokens.train import TrainConfig, resolve_bf16

    base = dict(name="v", scheme="single", model="m", train_file="t", validation_file="v", output_dir="o",
                checkpoint_dir="c")
    for bad in ("fast", 1):
        with pytest.raises(DataError, match="bf16: must be null, true, false or auto"):
            TrainConfig.from_mapping({**base, "bf16": bad})
    assert resolve_bf16(TrainConfig(**base), "cpu") == (False, None)  # default: fp32 on CPU
    assert resolve_bf16(TrainConfig(**base), "cuda") == (True, None)
    assert resolve_bf16(TrainConfig(**base, bf16="auto"), "cuda") == (True, None)
    assert resolve_bf16(TrainConfig(**base, bf16=True), "cpu") == (True, None)


def test_bf16_auto_is_fp32_with_several_cpu_processes(monkeypatch):
    """Each process would run its own probe (sharing the cores) and could decide differently: no probe, fp32."""
    from refusal_tokens.train import TrainConfig, resolve_bf16

    cfg = TrainConfig(name="v", scheme="single", model="m", train_file="t", validation_file="v", output_dir="o",
                      checkpoint_dir="c", bf16="auto")
    monkeypatch.setenv("WORLD_SIZE", "2")
    decided, probe = resolve_bf16(cfg, "cpu")
    assert decided is False and "several processes" in probe["reason"]
    assert resolve_bf16(cfg, "cuda") == (True, None)
