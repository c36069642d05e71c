"""No typed result in a lesson's prose: every number in a notebook's markdown is a parameter, a goal, a citation or
one of a few stated definitions. Results reach the reader only as cell outputs (tables, figures, and sentences
formatted from the numbers), so what the prose says cannot drift from what the run measured."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from refusal_tokens import evidence
from tests.test_report import CITED, numbers_in, numeric_leaves, renderings

ROOT = Path(__file__).resolve().parents[1]
# the lessons, and their executed copies (the same markdown, as the student reads it)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "reports" / "notebooks").glob("*.ipynb"))
# Definitions, not results: the Wilson intervals' 95%, probabilities' ends 0 and 1, the formulas' constants
# (2π/(1 + π), t = 1/(1 + e^b)), and the paper's section and table numbers.
DEFINITIONS = {"0", "1", "2", "3", "95"}
# Numbering, not numbers: headings ("## 3 · …"), list items ("1. …"), sections, notebooks, the paper's § and Table
# references and year, model names with a size (Llama-3-8B, Llama-3.3-70B); and a setting the reader is asked to
# try, written as code (`control_raised: 0.99`, `dvc exp run -S key=value`): an input, not a result.
STRUCTURE = re.compile(r"^#+ \d+ ·|^\s*\d+\.\s|§\d+|[Ss]ections? \d+|[Nn]otebooks? \d+|Tables? \d+(?:–\d+)?"
                       r"|et al\., \d{4}|Llama-\d+(?:\.\d+)?-\d+B|`[^`]*[=:][^`]*`")


def allowed() -> set[str]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    return renderings(numeric_leaves(params) + list(evidence.GOALS.values())) | CITED | DEFINITIONS


def typed_numbers(markdown: str, allow: set[str]) -> list[str]:
    text = "\n".join(STRUCTURE.sub("", line) for line in markdown.splitlines())
    return [n for n in numbers_in(text) if n not in allow]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_no_result_is_typed_into_a_notebooks_prose(path):
    allow = allowed()
    cells = json.loads(path.read_text())["cells"]
    typed = {i: found for i, c in enumerate(cells) if c["cell_type"] == "markdown"
             if (found := typed_numbers("".join(c["source"]), allow))}
    assert typed == {}, f"{path.name}: numbers in markdown that are no parameter, goal or citation: {typed}"


def test_a_typed_result_would_be_caught():
    allow = allowed()
    assert typed_numbers("## 3 · Results\n\nThe token reaches AUROC 0.873 after 37 steps.", allow) == ["0.873", "37"]
    assert typed_numbers("1. **Exercise.** `dvc exp run -S calibration.control_raised=0.99` (t = 0.95)", allow) == []
