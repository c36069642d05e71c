"""The in-distribution CoCoNot stand-in: a deterministic, subcategory-stratified split of CoCoNot original into a
training part and a held-out test part, and what the mix builder does with it."""

from collections import Counter

import pytest

from refusal_tokens import mixing as M
from refusal_tokens import sources as S
from refusal_tokens.errors import DataError
from refusal_tokens.sources import COCONOT_CATEGORIES, Record

from .conftest import MIRROR

ROWS = [{"id": f"{sub}-{i}", "category": cat, "subcategory": sub}
        for cat, sub, n in (("Incomplete requests", "a", 10), ("Incomplete requests", "b", 5),
                            ("Humanizing requests", "c", 1))
        for i in range(n)]


def test_split_is_stratified_by_subcategory_and_covers_every_row():
    parts = S.coconot_parts(ROWS, test_fraction=0.5, seed=0, dev_fraction=0.2)
    assert set(parts) == {r["id"] for r in ROWS}
    test = Counter(r["subcategory"] for r in ROWS if parts[r["id"]] == "test")
    dev = Counter(r["subcategory"] for r in ROWS if parts[r["id"]] == "dev")
    # floor(n × 0.5) per subcategory: 10 → 5, 5 → 2, 1 → 0 (a lone prompt stays on the training side);
    # then floor(n × 0.2): 10 → 2, 5 → 1, 1 → 0
    assert test == {"a": 5, "b": 2}
    assert dev == {"a": 2, "b": 1}


def test_adding_a_dev_part_leaves_the_test_part_unchanged():
    without = S.coconot_parts(ROWS, 0.5, seed=0, dev_fraction=0)
    with_dev = S.coconot_parts(ROWS, 0.5, seed=0, dev_fraction=0.2)
    assert {i for i, p in without.items() if p == "test"} == {i for i, p in with_dev.items() if p == "test"}
    assert set(without.values()) == {"train", "test"}


def test_fractions_that_leave_nothing_to_train_are_refused():
    with pytest.raises(DataError, match="sum below 1"):
        S.stratified_parts(ROWS, [("test", 0.5), ("dev", 0.5)], "train")


def test_split_depends_on_ids_and_seed_not_on_file_order():
    forward = S.coconot_parts(ROWS, 0.5, seed=0)
    assert S.coconot_parts(list(reversed(ROWS)), 0.5, seed=0) == forward
    assert S.coconot_parts(ROWS, 0.5, seed=1) != forward
    with pytest.raises(DataError, match="test fraction"):
        S.coconot_parts(ROWS, 1.0)


@pytest.mark.skipif(not (MIRROR / "coconot").is_dir(), reason="needs the offline mirror")
def test_the_registered_parts_are_disjoint_and_cover_coconot_original():
    test = S.load("coconot_original", MIRROR)
    dev = S.load("coconot_original_dev", MIRROR)
    train = S.load("coconot_original_train", MIRROR)
    assert not {r.id for r in test} & {r.id for r in train} and not {r.id for r in dev} & {r.id for r in train + test}
    assert len(test) + len(dev) + len(train) == 1001
    assert all(r.should_refuse for r in test + dev + train)
    # every subcategory with ≥ 2 prompts is on both sides
    both = {r.subcategory for r in test} & {r.subcategory for r in train}
    assert len(both) == len({r.subcategory for r in test})


def rec(i, prompt, refuse=True, category="Incomplete requests"):
    return Record(str(i), prompt, "x", category, "s", refuse)


def test_decontamination_keeps_the_training_part_out_of_every_index():
    training_part = [rec(1, "Where is the nearest bank?")]
    eval_sets = {"coconot_original": [rec(2, "What is my name?")],
                 "paper_csv": [rec(3, "where is the nearest bank"), rec(4, "What is my name?")]}
    kept, removed = M.decontamination_sets(eval_sets, training_part)
    assert [r.id for r in kept["paper_csv"]] == ["4"]  # normalised match removed; the test-part prompt stays
    assert removed == {"paper_csv": 1}
    assert kept["coconot_original"] == eval_sets["coconot_original"]


def test_extra_mixes_override_the_main_mix():
    params = dict(size=20, category_weights={c: 1.0 for c in COCONOT_CATEGORIES}, contrast_share=0.4,
                  general_share=0.6, max_response_tokens=50, max_prompt_tokens=50, val_fraction=0.25, seed=0,
                  primary_sources=[], fallback_sources=[], general_sources=[], refusal_proportions=[0.5],
                  extra_mixes={"r50_nocontrast": {"refusal_proportion": 0.5, "contrast_share": 0.0,
                                                  "general_share": 1.0}})
    specs = M.specs_from_params(params)
    assert [s.name for s in specs] == ["r50", "r50_nocontrast"]
    assert specs[1].contrast_share == 0.0 and specs[1].general_share == 1.0 and specs[1].size == 20


def test_refusals_are_capped_per_category_and_redistributed(toy_records):
    from refusal_tokens.decontaminate import EvalIndex

    index = EvalIndex.build({"bench": [Record("e", "completely unrelated evaluation prompt", "b", "c", "s", True)]})
    # toy_records hold 6 refusals per category; weights 10:1:1:1:1 ask 16 of 20 from the first category
    weights = {c: (10.0 if i == 0 else 1.0) for i, c in enumerate(COCONOT_CATEGORIES)}
    spec = M.MixSpec(name="t", size=20, refusal_proportion=1.0, category_weights=weights, contrast_share=0.0,
                     general_share=1.0, max_response_tokens=50, max_prompt_tokens=50, val_fraction=0.25, seed=0)
    mix = M.build_mix(spec, index, M.make_pools(toy_records, spec, index))
    counts = Counter(r.category for rs in mix.splits.values() for r in rs)
    assert counts[COCONOT_CATEGORIES[0]] == 6  # capped at what exists
    assert sum(counts.values()) == 20  # the other 14 went to the other categories
