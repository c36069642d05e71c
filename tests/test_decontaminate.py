from refusal_tokens.decontaminate import EvalIndex, decontaminate, jaccard, normalise, overlap_count, words
from refusal_tokens.sources import Record


def r(prompt, i=0):
    return Record(str(i), prompt, "train", "general", "x", False, response="ok")


EVAL = {"bench": [Record("e1", "How do I bake bread at home", "bench", "c", "s", True),
                  Record("e2", "What is the capital of France?", "bench", "c", "s", False)]}


def test_normalise():
    assert normalise("  What's the  CAPITAL of France?! ") == "what s the capital of france"


def test_jaccard_by_hand():
    a, b = words("how do i bake bread at home"), words("how do i bake bread at home today")
    assert jaccard(a, b) == 7 / 8


def test_three_levels():
    index = EvalIndex.build(EVAL)
    assert index.match("What is the capital of France?") == ("exact", "bench")
    assert index.match("what is the CAPITAL of france") == ("normalised", "bench")
    assert index.match("How do I bake bread at home today") == ("fuzzy", "bench")  # J = 7/8 ≥ 0.8
    assert index.match("How do I bake a cake") is None  # J = 4/9


def test_decontaminate_reports_per_source_and_leaves_zero_overlap():
    index = EvalIndex.build(EVAL)
    train = [r("What is the capital of France?", 1), r("how do i bake bread at home", 2),
             r("How do I bake bread at home today", 3), r("Tell me a joke", 4)]
    kept, report = decontaminate(train, index)
    assert [k.id for k in kept] == ["4"]
    assert report["train"] == {"candidates": 4, "exact": 1, "normalised": 1, "fuzzy": 1, "kept": 1}
    assert overlap_count((k.prompt for k in kept), index) == 0


def test_earlier_turns_are_checked_too():
    index = EvalIndex.build(EVAL)
    multi = Record("m", "And then?", "train", "general", "x", False, response="ok",
                   conversation=({"role": "user", "content": "What is the capital of France?"},
                                 {"role": "assistant", "content": "Paris"}))
    kept, _ = decontaminate([multi], index)
    assert kept == []
