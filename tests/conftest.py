"""Shared fixtures: hand-made records and a throw-away registry entry backed by a tiny file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from refusal_tokens import sources as S
from refusal_tokens.sources import COCONOT_CATEGORIES, GENERAL, Record, RemoteFile, Source

MIRROR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny_source(tmp_path, monkeypatch):
    """Register a source whose one file lives in a tmp mirror; returns ``make(name, filename, text, parser)``."""
    mirror = tmp_path / "mirror"
    monkeypatch.setenv(S.MIRROR_ENV, str(mirror))
    monkeypatch.setenv(S.CACHE_ENV, str(tmp_path / "cache"))

    def make(filename: str, text: str, parser, categories=COCONOT_CATEGORIES, sha256: str | None = None,
             url: str = "http://127.0.0.1:9/unreachable", write: bool = True) -> Source:
        path = mirror / "tiny" / filename
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        digest = sha256 or hashlib.sha256(text.encode()).hexdigest()
        src = Source("tiny", "tiny test source", "eval", "test", "none",
                     (RemoteFile(f"tiny/{filename}", url, digest),), parser, categories=categories)
        monkeypatch.setitem(S.SOURCES, "tiny", src)
        return src

    return make


def record(i: int, category: str, refuse: bool, sub: str = "sub", response: str | None = "resp",
           source: str = "toy") -> Record:
    return Record(f"{source}-{i}", f"prompt number {i} about {category} {sub}", source, category, sub, refuse,
                  response=response)


@pytest.fixture
def toy_records() -> list[Record]:
    """Per category: 6 refusals over two subcategories; 4 contrast rows for three categories; 20 general rows."""
    rows: list[Record] = []
    i = 0
    for category in COCONOT_CATEGORIES:
        for sub in ("a", "b"):
            for _ in range(3):
                rows.append(record(i, category, True, sub)); i += 1
    for category in COCONOT_CATEGORIES[:3]:
        for _ in range(4):
            rows.append(record(i, category, False, "contrast")); i += 1
    for _ in range(20):
        rows.append(record(i, GENERAL, False, "chat", source="chat")); i += 1
    return rows


@pytest.fixture(scope="module")
def tiny_single(tmp_path_factory):
    """A tiny random chat model with the single scheme's tokens (``single-words``), its base (``base``), and 40 toy
    rows tagged for the scheme as ``train.jsonl`` (32) / ``validation.jsonl`` (8), all in one folder."""
    from refusal_tokens import models, tiny

    tmp = tmp_path_factory.mktemp("tiny")
    rows = tiny.toy_chat_records()
    base = tiny.save_tiny_base(tmp / "base", [r.prompt + " " + r.response for r in rows])
    models.prepare_tokens(base, "single", "words", tmp / "single-words")
    tiny.write_tagged_splits(rows, "single", tmp, validation=8)
    return tmp
