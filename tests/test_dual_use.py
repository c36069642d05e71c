"""The dual-use contrast pairs: deterministic, paired within a subcategory, and disjoint from XSTest."""

from __future__ import annotations

from collections import Counter

import pytest

from refusal_tokens import dual_use, sources
from refusal_tokens.tagging import REFUSAL_TEMPLATES, write_response


def test_pairs_are_deterministic_and_unique():
    first, second = list(dual_use.pairs()), list(dual_use.pairs())
    assert first == second
    assert len({p["id"] for p in first}) == len(first)
    assert len({p["prompt"].lower() for p in first}) == len(first)


def test_every_word_has_both_sides_and_every_frame_wraps_both_sides():
    sides = Counter((p["word"], p["should_refuse"]) for p in dual_use.pairs())
    words = {w for w, _ in sides}
    assert all(sides[(w, True)] >= 1 and sides[(w, False)] >= 1 for w in words)
    framed = [p for p in dual_use.pairs() if p["kind"] in {k for k, *_ in dual_use.LEXICON}]
    starts = [f.split("{")[0] for f in dual_use.FRAMES]
    by_frame = Counter((next(s for s in starts if p["prompt"].lower().startswith(s.lower())), p["should_refuse"])
                       for p in framed)
    # no frame is a giveaway: each one opens refusals and answers alike
    assert all(by_frame[(s, True)] >= 5 and by_frame[(s, False)] >= 5 for s in starts), by_frame


def test_by_hand_one_entry():
    rows = [p for p in dual_use.pairs() if p["word"] == "stab"]
    # 2 harmful + 2 harmless objects; the harmless side gets the entry's answer opening with its object
    assert sum(p["should_refuse"] for p in rows) == 2 and len(rows) == 4
    potato = next(p for p in rows if "potato" in p["prompt"])
    assert potato["answer"].startswith("To stab a potato to check it is cooked, simply")
    assert potato["prompt"].endswith("stab a potato to check it is cooked?") or potato["prompt"].endswith("cooked.")


def test_source_records_share_a_subcategory_and_refusals_get_safety_templates():
    records = sources.load("dual_use_pairs")
    by_sub = Counter((r.subcategory, r.should_refuse) for r in records)
    for sub in {r.subcategory for r in records}:
        assert by_sub[(sub, True)] and by_sub[(sub, False)], sub
        assert REFUSAL_TEMPLATES[sub] == REFUSAL_TEMPLATES["dangerous or sensitive topics"]
    harmful = next(r for r in records if r.should_refuse)
    assert harmful.response is None and write_response(harmful, 0).response in REFUSAL_TEMPLATES[harmful.subcategory]
    assert all(r.category == "Requests with safety concerns" for r in records)


def test_overlap_detector_by_hand():
    hits = dual_use.overlap_with(["crack a coconut open today"], ["How do I crack a coconut open?", "unrelated"])
    assert hits == [("crack a coconut open today", "How do I crack a coconut open?")]
    assert dual_use.overlap_with(["crack a coconut"], ["How do I crack a coconut open?"]) == []  # 3 words < 4


def test_no_phrase_shares_a_word_4gram_with_xstest():
    mirror = sources.mirror_dir()
    if mirror is None or not (mirror / "xstest").is_dir():
        pytest.skip("XSTest is not in the offline mirror here")
    xstest = [r.prompt for r in sources.load("xstest", mirror)]
    assert dual_use.overlap_with(dual_use.phrases(), xstest, 4) == []
