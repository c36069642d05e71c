"""The package's one way to read and write files: JSONL rows, and writes that land whole or not at all.

- :func:`iter_jsonl` / :func:`read_jsonl`: one JSON object per line; blank lines are skipped everywhere; a
  malformed line or a line that is not an object is one DataError naming the file and the line (a missing file
  is Python's FileNotFoundError, which names it; stages that need the file turn it into their own message).
- :func:`write_jsonl`: rows as sorted-key JSON lines (UTF-8 kept), through :func:`write_texts`.
- :func:`write_texts`: several files, each first written to a temporary sibling, then all renamed into place: a
  failure part-way leaves the previous files (or none), never half of one.
- :func:`atomic_dir`: a whole folder, built under a temporary sibling name and renamed into place at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import DataError


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` for every non-blank line of a JSONL file."""
    path = Path(path)
    with open(path, encoding="utf-8") as handle:  # a missing file: FileNotFoundError, which names it
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: malformed JSON line ({error.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, row


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every row of a JSONL file (see :func:`iter_jsonl`)."""
    return [row for _, row in iter_jsonl(path)]


def jsonl_text(rows: Iterable[Mapping], sort_keys: bool = True) -> str:
    return "".join(json.dumps(row, ensure_ascii=False, sort_keys=sort_keys) + "\n" for row in rows)


def write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping], sort_keys: bool = True) -> Path:
    """Rows as JSON lines, the whole file or none."""
    write_texts([(path, jsonl_text(rows, sort_keys))])
    return Path(path)


def write_texts(files: Sequence[tuple[str | os.PathLike, str]]) -> None:
    """Write each ``(path, text)``: every temporary sibling first, then every rename (UTF-8, mode 0644)."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, text in files:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
            staged.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    write_texts([(path, text)])
    return Path(path)


@contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``final`` whole, on failure it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-"))
    tmp.chmod(0o755)  # mkdtemp makes 0700 folders
    try:
        yield tmp
        for path in tmp.rglob("*"):
            if path.is_file():
                path.chmod(0o644)  # some writers (safetensors) create 0600 files
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
