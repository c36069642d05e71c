"""Running the study's notebooks as pipeline stages.

``python -m refusal_tokens.notebook NOTEBOOK SECTION`` executes ``notebooks/NOTEBOOK.ipynb`` with papermill,
injecting the ``SECTION`` of ``params.yaml`` as parameters (lists and mappings arrive intact), and writes the
executed copy to ``reports/notebooks/``. Unknown parameter names are rejected *before* anything runs
(papermill itself only warns), and inside the notebook :func:`check_parameters` rejects them again for runs
that bypass this entry point.
"""

from __future__ import annotations

import argparse
import copy
import functools
import inspect
import json
import os
import sys
import types
from collections.abc import Mapping, MutableMapping
from pathlib import Path

_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
QUIET = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
         "TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "TQDM_DISABLE": "1",
         "PYTHONWARNINGS": "ignore"}


class ParameterError(ValueError):
    pass


def _accepts(annotation: object, value: object) -> bool:
    if isinstance(annotation, str):  # postponed annotations: compare by name
        annotation = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}.get(
            annotation.split("[")[0].strip(), object)
    origin = getattr(annotation, "__origin__", annotation)
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(origin, type):
        return isinstance(value, origin)
    return True  # unions and the like: not checked


def check_parameters(namespace: MutableMapping[str, object], section: str | None = None) -> dict[str, object]:
    """Validate a notebook's parameters; return them as a dict (to be written as resolved params).

    Declared parameters are the annotated assignments of the parameters cell (``steps: int = 20``); papermill
    injects plain assignments, so any injected name that was not declared is an unknown parameter. With
    ``section`` (the params.yaml section the notebook takes), the values are also checked against that section's
    schema (``config.check_section``: ranges, choices, cross-field rules; every problem at once), before any
    cell writes; a number written as a string (``2e-5``) is put back into ``namespace`` as a number.
    """
    declared = dict(namespace.get("__annotations__", {}))
    if not declared:
        raise ParameterError("no parameters declared: annotate the parameters cell (`name: type = default`)")
    unknown = sorted(
        name for name, value in namespace.items()
        if not name.startswith("_") and name not in _IPYTHON_NAMES and name not in declared
        and not isinstance(value, types.ModuleType) and not callable(value)
    )
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; this notebook accepts {sorted(declared)}")
    if section is not None:
        from .config import check_section

        checked = check_section(section, {name: namespace[name] for name in declared})
        for name in declared:
            value = getattr(checked, name)
            if isinstance(namespace[name], str) and not isinstance(value, str):
                namespace[name] = value
    wrong = [f"{name} should be {getattr(t, '__name__', t)}, got {namespace[name]!r}"
             for name, t in declared.items() if not _accepts(t, namespace[name])]
    if wrong:
        raise ParameterError("bad parameter type(s): " + "; ".join(wrong))
    return {name: namespace[name] for name in declared}


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding ``dvc.yaml`` (notebooks run with their own folder as working directory)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() and (folder / "pyproject.toml").is_file():
            return folder
    raise FileNotFoundError(f"no project root (dvc.yaml + pyproject.toml) above {here}")


def write_params(params: Mapping[str, object], path: str | os.PathLike) -> Path:
    """Every run writes the parameters it actually ran with."""
    from .files import write_text

    return write_text(path, json.dumps(dict(params), indent=2, sort_keys=True, default=str) + "\n")


def declared_parameters(notebook: str | os.PathLike) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(notebook)))


def notebook_defaults(notebook: str | os.PathLike) -> dict[str, object]:
    """The values of a notebook's parameters cell (papermill reads them as source text; they are literals). Read
    once per file version: every stage's parameter check lays each notebook section over these."""
    path = Path(notebook).resolve()
    return copy.deepcopy(_defaults(str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=16)
def _defaults(path: str, mtime_ns: int) -> dict[str, object]:
    import ast

    import papermill

    return {name: ast.literal_eval(p["default"]) for name, p in papermill.inspect_notebook(path).items()}


def run(notebook: str, section: str, params_file: str = "params.yaml", out_dir: str = "reports/notebooks",
        kernel: str = "python3", overrides: MutableMapping[str, object] | None = None) -> Path:
    import papermill

    from .config import check_section, load

    source = Path("notebooks") / f"{notebook}.ipynb"
    if not source.is_file():
        raise ParameterError(f"no notebook {source}")
    # The file (its sections, each laid over its notebook's parameters cell, and the rules between them) is checked
    # before anything runs or is written; overrides are checked again with the section they change.
    params = {**load(params_file, require=(section,)).values()[section], **(overrides or {})}
    declared = declared_parameters(source)
    unknown = sorted(set(params) - declared)
    if unknown:
        raise ParameterError(f"{params_file}:{section}: unknown parameter(s) {unknown} for {source}; it accepts "
                             f"{sorted(declared)}")
    if overrides:
        check_section(section, params, f"{params_file}:{section} with overrides")
    out = Path(out_dir) / f"{notebook}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    # The executed notebook is read by students: no progress bars or advisory warnings in its outputs (the kernel
    # inherits these; the stage's own log is unaffected).
    for name, value in QUIET.items():
        os.environ.setdefault(name, value)
    papermill.execute_notebook(str(source), str(out), parameters=params, kernel_name=kernel,
                               progress_bar=sys.stderr.isatty(), cwd=str(Path("notebooks").resolve()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=inspect.cleandoc(__doc__ or "").splitlines()[0])
    parser.add_argument("notebook", help="name under notebooks/, without .ipynb (e.g. 01_data_tagging)")
    parser.add_argument("section", help="params.yaml section to inject (e.g. data)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--kernel", default=os.environ.get("REFUSAL_TOKENS_KERNEL", "python3"))
    args = parser.parse_args(argv)
    from .config import ParamsError

    try:
        out = run(args.notebook, args.section, args.params, kernel=args.kernel)
    except (ParameterError, ParamsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"executed notebook written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
