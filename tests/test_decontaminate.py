from refusal_tokens.decontaminate import (EvalIndex, closest_pairs, decontaminate, jaccard, normalise, overlap_count,
                                          words)
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
    index = EvalIndex.build(EVAL, semantic_threshold=0.99)  # the wording levels alone
    assert index.match("What is the capital of France?") == ("exact", "bench")
    assert index.match("what is the CAPITAL of france") == ("normalised", "bench")
    assert index.match("How do I bake bread at home today") == ("fuzzy", "bench")  # J = 7/8 ≥ 0.8
    assert index.match("How do I bake a cake") is None  # J = 4/9


def test_decontaminate_reports_per_source_and_leaves_zero_overlap():
    index = EvalIndex.build(EVAL, semantic_threshold=0.99)
    train = [r("What is the capital of France?", 1), r("how do i bake bread at home", 2),
             r("How do I bake bread at home today", 3), r("Tell me a joke", 4)]
    kept, report = decontaminate(train, index)
    assert [k.id for k in kept] == ["4"]
    assert report["train"] == {"candidates": 4, "exact": 1, "normalised": 1, "fuzzy": 1, "semantic": 0, "kept": 1}
    assert overlap_count((k.prompt for k in kept), index) == 0


def test_earlier_turns_are_checked_too():
    index = EvalIndex.build(EVAL)
    multi = Record("m", "And then?", "train", "general", "x", False, response="ok",
                   conversation=({"role": "user", "content": "What is the capital of France?"},
                                 {"role": "assistant", "content": "Paris"}))
    kept, _ = decontaminate([multi], index)
    assert kept == []


PARAPHRASE = {"bench": EVAL["bench"] + [Record("e3", "What is money laundering?", "bench", "c", "s", False)]}


def test_a_paraphrase_is_caught_by_meaning_and_an_unrelated_prompt_is_not():
    index = EvalIndex.build(PARAPHRASE)  # default threshold 0.6
    # no word-level check sees these: Jaccard {what, money, laundering} / 6 words = 0.5 < 0.8
    assert jaccard(words("What does money laundering mean?"), words("What is money laundering?")) == 0.5
    assert index.match("What does money laundering mean?") == ("semantic", "bench")
    assert index.match("Tell me a joke") is None
    kept, report = decontaminate([r("What does money laundering mean?", 1), r("Tell me a joke", 2)], index)
    assert [k.id for k in kept] == ["2"] and report["train"]["semantic"] == 1


def test_closest_pairs_name_the_nearest_eval_prompt_closest_first():
    index = EvalIndex.build(PARAPHRASE)
    pairs = closest_pairs([r("Tell me a joke", 1), r("What does money laundering mean?", 2)], index, k=2)["bench"]
    assert [p["train"] for p in pairs] == ["What does money laundering mean?", "Tell me a joke"]
    assert pairs[0]["eval"] == "What is money laundering?" and pairs[0]["cosine"] > pairs[1]["cosine"]


def test_an_empty_index_matches_nothing():
    index = EvalIndex.build({})
    assert index.match("anything") is None and overlap_count(["anything"], index) == 0
