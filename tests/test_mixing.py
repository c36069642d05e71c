import json
from collections import Counter

import pytest

from refusal_tokens import mixing as M
from refusal_tokens.decontaminate import EvalIndex
from refusal_tokens.errors import DataError
from refusal_tokens.files import read_jsonl
from refusal_tokens.sources import COCONOT_CATEGORIES, GENERAL, Record

EQUAL = {c: 1.0 for c in COCONOT_CATEGORIES}


def spec(**overrides) -> M.MixSpec:
    base = dict(name="t", size=20, refusal_proportion=0.5, category_weights=EQUAL, contrast_share=0.4,
                general_share=0.6, max_response_tokens=50, max_prompt_tokens=50, val_fraction=0.25, seed=0,
                primary_sources=(), fallback_sources=(), general_sources=())
    return M.MixSpec(**{**base, **overrides})


@pytest.fixture
def empty_index():
    return EvalIndex.build({"bench": [Record("e", "completely unrelated evaluation prompt", "b", "c", "s", True)]})


def test_allocation_by_largest_remainder():
    assert M._allocate(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert M._allocate(10, {"a": 3, "b": 1, "z": 0}) == {"a": 8, "b": 2}  # 7.5/2.5: tie goes to 'a'
    assert M._allocate_capped(10, {"a": 1, "b": 1}, {"a": 2, "b": 20}, "x") == {"a": 2, "b": 8}


def test_mix_composition_by_hand(toy_records, empty_index):
    # 20 rows, r = 0.5: 10 refusals = 2 per category; 10 answers = 4 contrast (0.4) + 6 general.
    pools = M.make_pools(toy_records, spec(), empty_index)
    mix = M.build_mix(spec(), empty_index, pools)
    rows = [r for split in mix.splits.values() for r in split]
    assert len(rows) == 20
    refusals = Counter(r.category for r in rows if r.should_refuse)
    assert refusals == {c: 2 for c in COCONOT_CATEGORIES}
    # round-robin over subcategories: each category's two refusals come from both subcategories a and b
    for c in COCONOT_CATEGORIES:
        assert {r.subcategory for r in rows if r.should_refuse and r.category == c} == {"a", "b"}
    assert sum(not r.should_refuse and r.category != GENERAL for r in rows) == 4
    assert sum(r.category == GENERAL for r in rows) == 6
    # validation is stratified: round(n × 0.25) of each (category, refuse) group
    assert len(mix.splits["validation"]) == sum(
        round(n * 0.25) for n in Counter((r.category, r.should_refuse) for r in rows).values())


def test_mix_is_deterministic_and_seed_dependent(toy_records, empty_index):
    def ids(seed):
        s = spec(seed=seed)
        mix = M.build_mix(s, empty_index, M.make_pools(toy_records, s, empty_index))
        return [r.id for r in mix.splits["train"]]

    assert ids(0) == ids(0)
    assert ids(0) != ids(1)


def test_contaminated_rows_never_enter_the_mix(toy_records):
    leaked = toy_records[0]
    # the toy prompts differ only in a number, so by meaning they are all one prompt: the wording levels alone here
    index = EvalIndex.build({"bench": [Record("e", leaked.prompt.upper(), "b", "c", "s", True)]}, semantic_threshold=0.99)
    pools = M.make_pools(toy_records, spec(), index)
    assert pools.decontamination["toy"]["normalised"] == 1
    mix = M.build_mix(spec(), index, pools)
    assert leaked.id not in {r.id for split in mix.splits.values() for r in split}


def test_written_mix_has_every_scheme_and_zero_partial_output(toy_records, empty_index, tmp_path, monkeypatch):
    mix = M.build_mix(spec(), empty_index, M.make_pools(toy_records, spec(), empty_index))
    path = M.write_mix(mix, tmp_path)
    for scheme in ("none", "single", "category"):
        train = read_jsonl(path / scheme / "train.jsonl")
        assert len(train) == len(mix.splits["train"])
    first = read_jsonl(path / "single" / "train.jsonl")[0]
    assert first["completion"][0]["content"].startswith(("[refuse] ", "[respond] "))
    assert json.loads((path / "spec.json").read_text())["size"] == 20

    def explode(record, scheme):
        raise RuntimeError("disk full")

    monkeypatch.setattr(M, "tag", explode)
    mix2 = M.build_mix(spec(name="u"), empty_index, M.make_pools(toy_records, spec(name="u"), empty_index))
    with pytest.raises(RuntimeError):
        M.write_mix(mix2, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # no 'u', no temporary folder


def test_contrast_source_rows_enter_first(toy_records, empty_index):
    # 20 rows: 10 refusals, 10 answers (4 contrast + 6 general). contrast_source_rows = 4 → 2 pair refusals and
    # 2 pair answers first; the other 8 refusals and 2 contrast answers are allocated as before.
    from .conftest import record

    safety = COCONOT_CATEGORIES[-1]
    pairs = [record(100 + i, safety, i < 4, "pair", source="dual_use_pairs") for i in range(8)]
    s = spec(contrast_sources=("dual_use_pairs",), contrast_source_rows=4)
    mix = M.build_mix(s, empty_index, M.make_pools(toy_records + pairs, s, empty_index))
    rows = [r for split in mix.splits.values() for r in split]
    mine = Counter(r.should_refuse for r in rows if r.source == "dual_use_pairs")
    assert mine == {True: 2, False: 2}
    assert len(rows) == 20 and sum(r.should_refuse for r in rows) == 10
    assert sum(not r.should_refuse and r.category != GENERAL for r in rows) == 4  # 2 pair + 2 other contrast
    assert len(mix.pools.refuse[safety]["pair"]) == 4  # the mix's pools still list every candidate
    too_many = spec(contrast_sources=("dual_use_pairs",), contrast_source_rows=10)  # 5 refusals, only 4 exist
    with pytest.raises(DataError, match="contrast-source refusals: 5 rows requested but only 4"):
        M.build_mix(too_many, empty_index, M.make_pools(toy_records + pairs, too_many, empty_index))


def test_asking_for_more_than_exists_is_an_error(toy_records, empty_index):
    big = spec(size=200)  # 100 refusals, but only 6 exist per category (30 in all): capping cannot help
    with pytest.raises(DataError, match=r"refusals: 100 rows requested but only .* available"):
        M.build_mix(big, empty_index, M.make_pools(toy_records, big, empty_index))


def test_length_limits(toy_records, empty_index):
    long = Record("long", "x " * 400, "toy", GENERAL, "chat", False, response="fine")
    wordy = Record("wordy", "short prompt", "toy", GENERAL, "chat", False, response="One sentence. " * 100)
    pools = M.make_pools([long, wordy], spec(max_prompt_tokens=50, max_response_tokens=10), empty_index)
    kept = pools.general["toy"]
    assert [r.id for r in kept] == ["wordy"]
    assert M.approx_tokens(kept[0].response) <= 10 and kept[0].response.endswith(".")


def test_specs_from_params_name_mixes_by_proportion():
    params = dict(refusal_proportions=[0.5, 0.25], size=20, category_weights=EQUAL, contrast_share=0.4,
                  general_share=0.6, max_response_tokens=50, max_prompt_tokens=50, val_fraction=0.2, seed=0,
                  primary_sources=[], fallback_sources=[], general_sources=[])
    assert [s.name for s in M.specs_from_params(params)] == ["r50", "r25"]
