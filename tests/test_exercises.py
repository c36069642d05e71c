"""Exercises that run: every `dvc exp run -S key=value` the notebooks and the README suggest names a parameter that
exists in params.yaml, with a value the parameters schema accepts, and a stage in dvc.yaml that reads it (so the
experiment reruns something)."""

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from refusal_tokens import config

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"dvc exp run((?:\s+-S\s+\S+=[^\s`\"\\]+)+)")
OVERRIDE = re.compile(r"-S\s+(\S+?)=([^\s`\"\\]+)")


def documents() -> dict[str, str]:
    out = {"README.md": (ROOT / "README.md").read_text()}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        out[path.name] = "\n".join("".join(c["source"]) for c in cells)
    return out


def exercises() -> list[tuple[str, str]]:
    return [(name, m.group(0)) for name, text in documents().items() for m in COMMAND.finditer(text)]


def stage_params() -> set[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    keys = set()
    for stage in stages.values():
        spec = stage.get("do", stage)
        for entry in spec.get("params", []):
            keys.update([entry] if isinstance(entry, str) else [k for e in entry.values() for k in e])
    return keys


def test_there_are_exercises_in_every_lesson():
    names = {name for name, _ in exercises()}
    assert {"01_data_tagging.ipynb", "02_sft.ipynb", "03_calibration.ipynb", "04_benchmark_table.ipynb"} <= names


@pytest.mark.parametrize("where, command", exercises())
def test_every_suggested_experiment_is_a_valid_change_that_reruns_a_stage(where, command):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    values = copy.deepcopy(raw)
    read = stage_params()
    for key, text in OVERRIDE.findall(command):
        node = values
        *parents, leaf = key.split(".")
        for part in parents:
            assert isinstance(node, dict) and part in node, f"{where}: {key}: no {part!r} in params.yaml"
            node = node[part]
        assert leaf in node, f"{where}: {key} is not in params.yaml"
        node[leaf] = yaml.safe_load(text)
        assert any(key == p or key.startswith(p.replace("${key}", "").rstrip(".") + ".") for p in read), \
            f"{where}: no dvc.yaml stage lists {key} among its params, so the experiment would rerun nothing"
    config.validate(values, where=f"{where}: {command}")  # raises, naming every problem, if the value is bad
