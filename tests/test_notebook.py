import pytest

from refusal_tokens.config import ParamsError

from refusal_tokens import notebook as N


def namespace(**values):
    ns = {"__annotations__": {"steps": int, "lr": float, "name": str, "sizes": list}, "steps": 3, "lr": 0.1,
          "name": "x", "sizes": [1], "In": [], "_i1": "", "pd": pytest}  # a module and IPython names are ignored
    ns.update(values)
    return ns


def test_accepts_declared_parameters_and_int_for_float():
    assert N.check_parameters(namespace(lr=1)) == {"steps": 3, "lr": 1, "name": "x", "sizes": [1]}


def test_rejects_unknown_parameter():
    with pytest.raises(N.ParameterError, match=r"unknown parameter\(s\) \['stpes'\]"):
        N.check_parameters(namespace(stpes=5))


def test_rejects_wrong_type():
    with pytest.raises(N.ParameterError, match="steps should be int"):
        N.check_parameters(namespace(steps="10"))
    with pytest.raises(N.ParameterError, match="steps should be int"):
        N.check_parameters(namespace(steps=True))


def test_runner_rejects_unknown_params_before_running(tmp_path, monkeypatch):
    root = N.project_root()
    monkeypatch.chdir(root)
    params = tmp_path / "params.yaml"
    params.write_text("data:\n  size: 10\n  sise: 3\n")
    with pytest.raises(ParamsError, match=r"data\.sise: unknown key"):
        N.run("01_data_tagging", "data", params_file=str(params), out_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    with pytest.raises(ParamsError, match="train: missing section"):
        N.run("01_data_tagging", "train", params_file=str(params), out_dir=str(tmp_path / "out"))


def test_source_notebooks_are_stored_without_outputs():
    """The notebooks are the source of truth (edited in JupyterLab): they are committed output-free, so that a
    diff shows only what a person changed. Executed copies live in reports/notebooks/."""
    import json

    for path in sorted((N.project_root() / "notebooks").glob("*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for number, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                    f"{path.name} cell {number} holds outputs: clear them (Kernel → Restart and Clear Outputs)")


def test_code_cells_are_short_enough_to_read():
    """A lesson shows a little code and its result: plumbing lives in the package (the parameters cell, a list of
    declarations, is the one exception)."""
    import json

    for path in sorted((N.project_root() / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code" and "parameters" not in cell["metadata"].get("tags", []):
                assert len(cell["source"]) <= 15, f"{path.name} cell {i}: {len(cell['source'])} lines"


def test_executed_lessons_show_their_figures():
    """Every figure a lesson makes is shown under the cell that makes it (and saved): the executed notebooks in
    reports/notebooks/ carry the PNGs, so they render without a rerun."""
    import json

    minimum = {"01_data_tagging": 2, "02_sft": 3, "03_calibration": 5, "04_benchmark_table": 1, "05_report": 1}
    for name, least in minimum.items():
        cells = json.loads((N.project_root() / "reports" / "notebooks" / f"{name}.ipynb").read_text())["cells"]
        images = sum("image/png" in o.get("data", {}) for c in cells if c["cell_type"] == "code"
                     for o in c.get("outputs", []))
        assert images >= least, f"{name}: {images} figures shown inline"
