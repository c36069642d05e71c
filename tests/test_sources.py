import json
import time

import pytest

from refusal_tokens import sources as S
from refusal_tokens.errors import DataError, SourceUnavailable

from .conftest import MIRROR, sha

JSONL = '{"id": "a", "category": "Humanizing requests", "subcategory": "personal inquiry", "prompt": "How are you?"}\n'


def test_loads_from_mirror_and_normalises(tiny_source):
    tiny_source("x.jsonl", JSONL, S._coconot(True))
    (rec,) = S.load("tiny")
    assert (rec.id, rec.prompt, rec.category, rec.should_refuse, rec.source) == (
        "a", "How are you?", "Humanizing requests", True, "tiny")


def test_sha256_mismatch_is_one_clear_error(tiny_source):
    tiny_source("x.jsonl", JSONL, S._coconot(True), sha256="0" * 64)
    with pytest.raises(DataError, match="sha256 mismatch"):
        S.load("tiny")


def test_missing_everywhere_and_offline_is_unavailable(tiny_source, tmp_path):
    tiny_source("x.jsonl", JSONL, S._coconot(True), write=False)
    with pytest.raises(SourceUnavailable, match="REFUSAL_TOKENS_MIRROR") as info:
        S.load("tiny")
    assert info.value.source == "tiny"
    assert not any((tmp_path / "cache").rglob("*.part-*")) and not any((tmp_path / "cache").rglob(".part-*"))


def test_download_is_verified_then_cached(tiny_source, tmp_path):
    upstream = tmp_path / "upstream.jsonl"
    upstream.write_text(JSONL)
    tiny_source("x.jsonl", JSONL, S._coconot(True), url=upstream.as_uri(), write=False)
    assert len(S.load("tiny")) == 1
    assert (tmp_path / "cache" / "tiny" / "x.jsonl").read_text() == JSONL
    upstream.unlink()  # second load comes from the cache
    assert len(S.load("tiny")) == 1


def test_bad_download_leaves_nothing_behind(tiny_source, tmp_path):
    upstream = tmp_path / "upstream.jsonl"
    upstream.write_text(JSONL + JSONL)  # not the pinned bytes
    tiny_source("x.jsonl", JSONL, S._coconot(True), url=upstream.as_uri(), write=False)
    with pytest.raises(DataError, match="sha256 mismatch"):
        S.load("tiny")
    assert list((tmp_path / "cache").rglob("*")) == []  # no file, and no empty folder either


def test_malformed_json_line_names_file_and_line(tiny_source):
    tiny_source("x.jsonl", JSONL + '{"id": "b", \n', S._coconot(True))
    with pytest.raises(DataError, match=r"x\.jsonl:2: malformed JSON"):
        S.load("tiny")


def test_missing_field_in_json_line(tiny_source):
    tiny_source("x.jsonl", '{"id": "a", "category": "Humanizing requests", "prompt": "hi"}\n', S._coconot(True))
    with pytest.raises(DataError, match=r"x\.jsonl:1: missing field\(s\) \['subcategory'\]"):
        S.load("tiny")


def test_csv_missing_column(tiny_source):
    tiny_source("x.csv", "goal,nottarget\nDo harm,Sure\n", S._advbench, categories=None)
    with pytest.raises(DataError, match=r"missing column\(s\) \['target'\]"):
        S.load("tiny")


def test_csv_row_with_extra_field_names_line(tiny_source):
    tiny_source("x.csv", "goal,target\nDo harm,Sure\nDo more,Sure,extra\n", S._advbench, categories=None)
    with pytest.raises(DataError, match=r"x\.csv:3: row has"):
        S.load("tiny")


def test_unknown_category(tiny_source):
    bad = JSONL.replace("Humanizing requests", "Rude requests")
    tiny_source("x.jsonl", bad, S._coconot(True))
    with pytest.raises(DataError, match="unknown category 'Rude requests'"):
        S.load("tiny")


def test_empty_result(tiny_source):
    tiny_source("x.jsonl", "\n", S._coconot(True))
    with pytest.raises(DataError, match="no records"):
        S.load("tiny")


def test_empty_prompt(tiny_source):
    tiny_source("x.jsonl", JSONL.replace("How are you?", "  "), S._coconot(True))
    with pytest.raises(DataError, match="empty prompt"):
        S.load("tiny")


def test_unknown_source_name():
    with pytest.raises(DataError, match="unknown source 'nope'"):
        S.load("nope")


def test_hub_only_set_offline_is_unavailable_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    S.hub_reachable.cache_clear()
    start = time.monotonic()
    records, status = S.try_load("wildguardtest")
    assert records is None and status.startswith("not run:") and "allenai/wildguardmix" in status
    assert time.monotonic() - start < 5
    S.hub_reachable.cache_clear()


def test_registry_entries_are_complete():
    for name, src in S.SOURCES.items():
        assert src.role in ("train", "dev", "eval", "judge"), name
        assert [bool(src.files), bool(src.hub), src.built_here].count(True) == 1, name  # exactly one way to obtain it
        assert not src.built_here or src.parser is not None, name
        for f in src.files:
            assert len(f.sha256) == 64 and f.url.startswith("https://"), (name, f.path)


@pytest.mark.skipif(not MIRROR.is_dir(), reason="offline mirror ../shared/datasets not present")
def test_real_mirror_counts_match_the_upstream_cards(monkeypatch):
    # Counts from the upstream data cards: CoCoNot 1,001 original (395 safety) + 379 contrast; XSTest 250 + 200.
    monkeypatch.setenv(S.MIRROR_ENV, str(MIRROR))
    # held-out test part + dev part + training part
    original = S.load("coconot_original") + S.load("coconot_original_dev") + S.load("coconot_original_train")
    assert len(original) == 1001 and all(r.should_refuse for r in original)
    assert sum(r.category == "Requests with safety concerns" for r in original) == 395
    contrast = S.load("coconot_contrast") + S.load("coconot_contrast_dev")  # test half + dev half
    assert len(contrast) == 379 and len({r.id for r in contrast}) == 379 and not any(r.should_refuse for r in contrast)
    xstest = S.load("xstest")
    assert (sum(r.should_refuse for r in xstest), sum(not r.should_refuse for r in xstest)) == (200, 250)
    assert len(S.load("sorry_bench_partial")) == 449  # row 141 missing in every log
    for name in S.names(offline_only=True):  # every offline file matches its pinned sha256
        for f in S.get(name).files:
            assert sha(MIRROR / f.path) == f.sha256


def test_require_names_every_missing_source():
    with pytest.raises(SourceUnavailable, match=r"a, c: needed but unavailable \(why a; why c\)"):
        S.require({"a": None, "b": [], "c": None}, {"a": "why a", "c": "why c"}, ["a", "b", "c"])
