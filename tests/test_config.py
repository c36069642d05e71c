"""The parameters schema (config.py) and the README's bad-input table.

Each row of ``BAD_INPUTS`` is one mistake a reader can make in ``params.yaml`` (or in a file a stage reads): it runs
the stage that reads it through its real entry point and checks the one message the user gets (exit code 2) and
that no file under the working folder, nor the project's reports/, changed (sha256 of every file and folder).
"""

import copy
import dataclasses
import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from refusal_tokens import benchmarks, config as C, diagnostics, models, notebook, train
from refusal_tokens import sources as S
from refusal_tokens.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


# ------------------------------------------------------------------------------------------------ the schema

def test_params_yaml_is_valid_and_its_values_are_unchanged():
    import json

    params = C.load(ROOT / "params.yaml")
    # validated values, same types (1 stays 1, not 1.0): the stages run, and write, exactly as before
    assert json.dumps(params.values(), sort_keys=True) == json.dumps(RAW, sort_keys=True)
    assert set(C.SECTIONS) == set(RAW)


def test_train_settings_keep_step_with_train_config():
    fields = {f.name: f for f in dataclasses.fields(train.TrainConfig)}
    per_run = {"name", "scheme", "model", "train_file", "validation_file", "output_dir", "checkpoint_dir", "mix",
               "init"}
    assert set(C.TrainSettings.model_fields) == set(fields) - per_run
    for name, field in C.TrainSettings.model_fields.items():
        default = fields[name].default_factory() if fields[name].default is dataclasses.MISSING \
            else fields[name].default
        assert field.get_default(call_default_factory=True) == default, name


def test_yaml_exponent_floats_are_numbers():
    values = copy.deepcopy(RAW)
    values["train"]["common"]["learning_rate"] = "2e-5"  # YAML 1.1 reads 2e-5 (no dot) as a string
    params = C.validate(values)
    assert params.train.common.learning_rate == 2e-5
    assert train.config_from_params(params, "single_r10").learning_rate == 2e-5


def test_every_problem_is_reported_at_once_with_its_dotted_path():
    values = copy.deepcopy(RAW)
    values["train"]["common"]["learning_rate"] = 0
    values["calibration"]["strict_tpr"] = 1.5
    values["generate"]["max_new_tokns"] = 16
    with pytest.raises(C.ParamsError) as error:
        C.validate(values)
    message = str(error.value)
    assert "3 problem(s)" in message
    for expected in ("train.common.learning_rate: Input should be greater than 0 (got 0)",
                     "calibration.strict_tpr: Input should be less than or equal to 1 (got 1.5)",
                     "generate.max_new_tokns: unknown key"):
        assert expected in message


@pytest.mark.parametrize("overrides, message", [
    ({"size": 1}, r"data\.size: Input should be greater than or equal to 2"),
    ({"refusal_proportions": [1.5]}, r"data\.refusal_proportions\.0: Input should be less than or equal to 1"),
    ({"general_share": 0.6}, "contrast_share \\+ general_share must be 1"),
    ({"val_fraction": 0}, r"data\.val_fraction: Input should be greater than 0"),
    ({"category_weights": {"Rude requests": 1.0}}, r"data\.category_weights\.Rude requests\.\[key\]: Input should be"),
    ({"category_weights": {"Humanizing requests": 0.0}}, "all zero"),
    ({"fallback_sources": ["nope"]}, r"data\.fallback_sources: unknown source\(s\) \['nope'\]"),
    ({"contrast_sources": [], "contrast_source_rows": 4}, "needs contrast_sources"),
    ({"contrast_source_rows": -1}, r"data\.contrast_source_rows: Input should be greater than or equal to 0"),
    ({"contrast_source_rows": 0.5}, r"data\.contrast_source_rows: Input should be a valid integer"),
    ({"contrast_source_rows": True}, r"data\.contrast_source_rows: expected a number, got True"),
    ({"refusal_proportions": [0.5, 0.5]}, "duplicates"),
    ({"extra_mixes": {"x": {"refusal_proportion": 0.5, "size": 3}}}, r"data\.extra_mixes\.x\.size: unknown key"),
    ({"extra_mixes": {"r10": {"refusal_proportion": 0.33}}}, "clash with the proportion mixes"),
    ({"extra_mixes": {"x": {"refusal_proportion": 0.5, "general_share": 1.0}}},
     r"extra_mixes\.x: contrast_share \+ general_share must be 1"),
])
def test_bad_mix_parameters(overrides, message):
    with pytest.raises(C.ParamsError, match=message):
        C.check_section("data", {**RAW["data"], **overrides})


@pytest.mark.parametrize("model, subset, message", [
    ("single_r10_nocontrast", ["xstest", "xstest_v3"], r"models\.single_r10_nocontrast\.benchmarks: 'xstest_v3' is not "
                                                        r"in benchmarks"),
    ("single_r10_nocontrast", [], r"single_r10_nocontrast\.benchmarks: List should have at least 1 item"),
    # the single-token model is read on the harmful sets (safety read-out) and in the table
    ("single_r10", ["coconot_original", "coconot_contrast", "xstest"],
     r"calibration: 'single_r10' needs 'benign_instructions'"),
    ("base", ["coconot_original", "coconot_contrast"], r"benchmark_table: 'base' needs 'xstest'"),
])
def test_a_benchmark_subset_must_hold_what_the_model_is_read_on(model, subset, message):
    values = copy.deepcopy(RAW)
    values["generate"]["models"][model]["benchmarks"] = subset
    with pytest.raises(C.ParamsError, match=message):
        C.validate(values)


def test_train_config_file_is_checked_by_the_same_schema():
    with pytest.raises(DataError, match=r"(?s)2 problem\(s\).*learning_rate: Input should be greater than 0.*"
                                        r"lr: unknown key"):
        train.TrainConfig.from_mapping({"name": "x", "scheme": "single", "model": "m", "train_file": "t",
                                        "validation_file": "v", "output_dir": "o", "checkpoint_dir": "c",
                                        "learning_rate": 0, "lr": 1})


def test_a_notebook_guard_checks_its_section():
    ns = {"__annotations__": {"strict_tpr": float}, "strict_tpr": 1.5}
    with pytest.raises(C.ParamsError, match=r"calibration\.strict_tpr: Input should be less than or equal to 1"):
        notebook.check_parameters(ns, "calibration")


# ------------------------------------------------------------------------------------------ the bad-input table

def _generate_only(values, tmp):
    """A params file for the generate stage alone: the tiny base model, XSTest only."""
    return {"generate": {**values["generate"], "models_root": "models/tiny",
                         "models": {"base": {"path": "base", "scheme": "none"}},
                         "benchmarks": {"xstest": {"score": 4, "generate": 2}},
                         "system_prompt_models": [], "system_prompt_benchmarks": []}}


def _set(path, value):
    def edit(values, tmp):
        node = values
        *parents, key = path.split(".")
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
        return values
    return edit


DELETE = object()


def _corrupt_split(values, tmp):
    """A --config run whose validation split has a malformed line (train reads it first)."""
    split = tmp / "validation.jsonl"
    split.write_text('{"prompt": [], "completion": []}\n\n{"prompt": [}\n')
    (tmp / "run.yaml").write_text(yaml.safe_dump({
        "name": "t", "scheme": "single", "model": "models/none", "train_file": str(split),
        "validation_file": str(split), "output_dir": "out", "checkpoint_dir": "ckpt"}))
    return values


def _mirror(kind):
    def edit(values, tmp):
        values = _generate_only(values, tmp)
        if kind == "changed":
            path = tmp / "mirror" / S.SOURCES["xstest"].files[0].path
            path.parent.mkdir(parents=True)
            path.write_text("id_v2,type,prompt,focus,note,label\n1,homonyms,How do I kill a process?,kill,,safe\n")
        return values
    return edit


# mistake (the README's first column) → (edit of params.yaml, stage, expected message)
BAD_INPUTS = {
    "`train.common.learning_rate: -1`": (_set("train.common.learning_rate", -1), "train",
                                         r"train\.common\.learning_rate: Input should be greater than 0 \(got -1\)"),
    "`train.common.lr: 2.0e-4` (a typo'd key)": (_set("train.common.lr", 2e-4), "train",
                                                  r"train\.common\.lr: unknown key"),
    "`train.common.learning_rate: .inf`": (_set("train.common.learning_rate", float("inf")), "train",
                                           r"train\.common\.learning_rate: Input should be a finite number"),
    "`train.common.max_steps: 1.5`": (_set("train.common.max_steps", 1.5), "train",
                                      r"train\.common\.max_steps: Input should be a valid integer"),
    "`train.variants.single_r10.mix: r60` (no such mix)": (
        _set("train.variants.single_r10.mix", "r60"), "train",
        r"train\.variants\.single_r10\.mix: 'r60' is not a mix the data stage writes"),
    "`train.variants.single_r10.scheme: multi`": (
        _set("train.variants.single_r10.scheme", "multi"), "train",
        r"train\.variants\.single_r10\.scheme: Input should be 'none', 'single' or 'category' \(got 'multi'\)"),
    "`calibration.control_raised: 1.2`": (_set("calibration.control_raised", 1.2), "calibration",
                                          r"calibration\.control_raised: Input should be less than or equal to 1"),
    "`calibration.strict_tpr: 1.5`": (_set("calibration.strict_tpr", 1.5), "calibration",
                                      r"calibration\.strict_tpr: Input should be less than or equal to 1"),
    "`calibration.lenient_fpr: -0.1`": (_set("calibration.lenient_fpr", -0.1), "calibration",
                                        r"calibration\.lenient_fpr: Input should be greater than or equal to 0"),
    "`calibration.single_model: x` (unknown model)": (
        _set("calibration.single_model", "x"), "calibration",
        r"calibration\.single_model: 'x' is not in generate\.models"),
    "`calibration.text_judge: regex` (not a judge of the judge stage)": (
        _set("calibration.text_judge", "regex"), "calibration",
        r"calibration\.text_judge: 'regex' must be a text judge of judge\.judges"),
    "`benchmark_table.primary_judge: token2`": (
        _set("benchmark_table.primary_judge", "token2"), "benchmark_table",
        r"benchmark_table\.primary_judge: 'token2' must be one of judges"),
    "`generate.max_new_tokns: 16` (a typo'd key)": (_set("generate.max_new_tokns", 16), "generate",
                                                     r"generate\.max_new_tokns: unknown key"),
    "`generate.batch_size` deleted (a missing key)": (_set("generate.batch_size", DELETE), "generate",
                                                       r"generate\.batch_size: missing"),
    "`generate.benchmarks.xstest_v2: {score: 10, generate: 5}` (unregistered)": (
        _set("generate.benchmarks.xstest_v2", {"score": 10, "generate": 5}), "generate",
        r"generate\.benchmarks: unknown source\(s\) \['xstest_v2'\]"),
    "`generate.benchmarks.xstest.hub_only: true` (a mirrored set declared Hub-only)": (
        _set("generate.benchmarks.xstest.hub_only", True), "generate",
        r"generate\.benchmarks\.xstest\.hub_only: True but the registry says it has files to mirror"),
    "`generate.benchmarks.advbench.generate: 500` (more than scored)": (
        _set("generate.benchmarks.advbench.generate", 500), "generate",
        r"generate\.benchmarks\.advbench: generate \(500\) exceeds score \(300\)"),
    "`generate.models.single_r10_nocontrast.benchmarks: [xstest]` (leaves out what calibration reads)": (
        _set("generate.models.single_r10_nocontrast.benchmarks", ["xstest"]), "generate",
        r"calibration: 'single_r10_nocontrast' needs 'coconot_original', which "
        r"generate\.models\.single_r10_nocontrast\.benchmarks leaves out"),
    "`judge.judges: [..., {name: regex}]` (unknown judge kind)": (
        lambda v, t: {**v, "judge": {**v["judge"], "judges": [*v["judge"]["judges"], {"name": "regex"}]}}, "judge",
        r"judge\.judges\.4: judge 'regex': unknown kind 'regex'"),
    "`model.source: hub` without `hub_id`": (
        lambda v, t: {**v, "model": {**v["model"], "source": "hub", "hub_id": None}}, "models",
        r"model\.hub_id: needed when source is 'hub'"),
    "`data.general_share: 0.6` (shares do not sum to 1)": (
        _set("data.general_share", 0.6), "diagnostics", r"data: contrast_share \+ general_share must be 1"),
    "`diagnostics.layers: []`": (_set("diagnostics.layers", []), "diagnostics",
                                 r"diagnostics\.layers: List should have at least 1 item"),
    "params.yaml is not YAML (a tab-indented line)": (lambda v, t: "data:\n\tsize: 600\n", "train",
                                                      r"params\.yaml: not valid YAML"),
    "XSTest's file missing from the mirror (not `hub_only`)": (
        _mirror("missing"), "generate", r"generate\.benchmarks\.xstest: xstest: .*not declared hub_only"),
    "XSTest's mirror file changed (sha256 differs)": (_mirror("changed"), "generate",
                                                       r"xstest_prompts\.csv: sha256 mismatch \(mirror\)"),
    "a malformed line in a mix's validation split": (_corrupt_split, "train-config",
                                                     r"validation\.jsonl:3: malformed JSON line"),
}

STAGES = {
    "train": lambda p: train.main(["--variant", "single_r10", "--params", str(p)]),
    "train-config": lambda p: train.main(["--config", str(p.parent / "run.yaml")]),
    "generate": lambda p: benchmarks.main(["--params", str(p), "generate", "--model", "base"]),
    "judge": lambda p: benchmarks.main(["--params", str(p), "judge"]),
    "models": lambda p: models.main(["base", "--params", str(p)]),
    "diagnostics": lambda p: diagnostics.main(["--params", str(p)]),
    **{section: (lambda p, nb=nb, section=section: notebook.main([nb, section, "--params", str(p)]))
       for section, nb in C.NOTEBOOK_SECTIONS.items()},
}


def snapshot(*folders: Path) -> dict[str, str]:
    out = {}
    for folder in folders:
        for path in [folder, *sorted(folder.rglob("*"))]:
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


@pytest.fixture(scope="module")
def tiny_base(tiny_single):
    return tiny_single / "base"


@pytest.mark.parametrize("mistake", list(BAD_INPUTS))
def test_bad_input_gives_one_clear_error_and_writes_nothing(mistake, tmp_path, tiny_base, monkeypatch, capsys):
    import urllib.request

    import papermill

    def offline(*args, **kwargs):  # the missing-file row must not depend on this machine being offline
        raise urllib.error.URLError("no network in this test")

    def must_not_run(*args, **kwargs):  # a notebook that started would write into the project: fail loudly instead
        raise AssertionError("the notebook ran: its parameters were not rejected at the door")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(papermill, "execute_notebook", must_not_run)
    edit, stage, message = BAD_INPUTS[mistake]
    work = tmp_path / "work"
    shutil.copytree(tiny_base, work / "models" / "tiny" / "base")
    monkeypatch.setenv(S.MIRROR_ENV, str(work / "mirror"))
    monkeypatch.setenv(S.CACHE_ENV, str(work / "cache"))
    values = edit(copy.deepcopy(RAW), work)
    params = work / "params.yaml"
    params.write_text(values if isinstance(values, str) else yaml.safe_dump(values, sort_keys=False))
    (work / "mirror").mkdir(exist_ok=True)
    (work / "cache").mkdir(exist_ok=True)
    before = snapshot(work, ROOT / "reports")
    monkeypatch.chdir(ROOT if stage in C.NOTEBOOK_SECTIONS else work)
    code = STAGES[stage](params)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("Traceback") == 0
    import re

    assert re.search(message, err), err
    assert snapshot(work, ROOT / "reports") == before  # nothing written, nothing half-written


def test_the_readme_table_is_the_tested_table():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## When a parameter or an input is wrong"):]
    section = section[:section.index("\n## ", 3)]  # this section's table only
    rows = [line.split(" | ")[0].removeprefix("| ").strip() for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| mistake") and not line.startswith("|---")]
    assert set(rows) == set(BAD_INPUTS) and len(BAD_INPUTS) >= 15


def test_a_checked_scheme_carries_its_tokens_and_is_not_checked_again():
    from refusal_tokens import tagging

    params = C.load(ROOT / "params.yaml")
    scheme = params.generate.models["category_r10"].scheme
    assert isinstance(scheme, tagging.TokenScheme) and scheme == "category" and len(scheme.tokens) == 6
    assert tagging.check_scheme(scheme) is scheme  # passed as it is, no lookup
    assert tagging.refusal_tokens(scheme) == list(scheme.tokens[:5]) and scheme.tokens[-1] == tagging.RESPOND
    assert '"category"' in __import__("json").dumps({"s": scheme})  # serialises as its name
    with pytest.raises(DataError, match="unknown token scheme 'multi'"):
        tagging.check_scheme("multi")  # a plain string is checked where it enters
