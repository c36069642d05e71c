"""Control rules (pure, hand-checked), first-token scoring and the exact sweep on a tiny random model."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from refusal_tokens import control, models, tiny
from refusal_tokens.control import Setting, biased, decide, decide_all
from refusal_tokens.errors import DataError
from refusal_tokens.tagging import CATEGORY_TOKENS, REFUSE, RESPOND

control_batches = control.length_batches  # the real one, for tests that watch the backend's batching

SAFETY = CATEGORY_TOKENS["Requests with safety concerns"]
INCOMPLETE = CATEGORY_TOKENS["Incomplete requests"]


def single_row(p_refuse: float, p_respond: float, p_other: float = 0.0) -> dict:
    return {"p": {"1": {REFUSE: p_refuse, RESPOND: p_respond}}, "p_other": {"1": p_other}}


def category_row(probs: dict[str, float], p_respond: float) -> dict:
    p = dict.fromkeys(CATEGORY_TOKENS.values(), 0.0) | probs | {RESPOND: p_respond}
    return {"p": {"1": p}, "p_other": {"1": 0.0}}


def test_bias_is_exact_by_hand():
    # bias ln 2 on [refuse]: weight 0.2·2 = 0.4; Z = 1 + 0.2·(2 − 1) = 1.2 → p'(refuse) = 1/3, p'(respond) = 0.5
    p, other = biased({REFUSE: 0.2, RESPOND: 0.6}, 0.2, {REFUSE: math.log(2)})
    assert p[REFUSE] == pytest.approx(1 / 3) and p[RESPOND] == pytest.approx(0.5) and other == pytest.approx(0.2 / 1.2)


def test_bias_equals_softmax_of_biased_logits():
    logits = torch.tensor([1.0, 2.0, 0.5, -1.0])  # tokens 0 = [refuse], 1 = [respond], 2–3 others
    probs = torch.softmax(logits, 0)
    p, other = biased({REFUSE: float(probs[0]), RESPOND: float(probs[1])}, float(probs[2]), {REFUSE: 1.5})
    direct = torch.softmax(logits + torch.tensor([1.5, 0, 0, 0]), 0)
    assert p[REFUSE] == pytest.approx(float(direct[0])) and p[RESPOND] == pytest.approx(float(direct[1]))
    assert other == pytest.approx(float(direct[2]))


def test_threshold_rule_single_is_inclusive():
    row = single_row(0.3, 0.7)
    assert decide(row, "single", Setting("t", "threshold", 0.3)) == REFUSE
    assert decide(row, "single", Setting("t", "threshold", 0.31)) == RESPOND
    assert decide(row, "single", Setting("a")) == RESPOND  # argmax: 0.3 < 0.7
    assert decide(row, "single", Setting("b", bias=math.log(3))) == REFUSE  # 0.9 vs 0.7 after bias


def test_category_rules_use_the_most_likely_category_token():
    row = category_row({SAFETY: 0.3, INCOMPLETE: 0.2}, 0.5)  # p(refusal) = 0.5, c* = safety
    assert decide(row, "category", Setting("argmax")) == RESPOND  # greedy: 0.3 < 0.5
    assert decide(row, "category", Setting("t", "threshold", 0.5)) == SAFETY  # sum 0.5 ≥ 0.5
    per_category = Setting("pc", "threshold", {"Requests with safety concerns": 0.6}, default_threshold=0.1)
    assert decide(row, "category", per_category) == RESPOND  # c*'s own threshold 0.6 > 0.5
    assert decide(row, "category", Setting("pc", "threshold", {INCOMPLETE: 0.9}, default_threshold=0.4)) == SAFETY


@pytest.mark.parametrize("setting, scheme, message", [
    (Setting("x", "threshold", 1.5), "single", r"\[0, 1\]"),
    (Setting("x", "threshold", -0.1), "single", r"\[0, 1\]"),
    (Setting("x", "threshold", {"Made-up requests": 0.5}), "category", "unknown category"),
    (Setting("x", "threshold", {"Incomplete requests": 0.5}), "single", "category-scheme"),
    (Setting("x", "threshold"), "single", "needs a threshold"),
    (Setting("x", "sometimes"), "single", "unknown rule"),
    (Setting("x", temperature=3.0), "single", "not scored"),
    (Setting("x"), "none", "cannot be controlled"),
])
def test_bad_settings_raise_one_clear_error(setting, scheme, message):
    with pytest.raises(DataError, match=message):
        decide_all([single_row(0.5, 0.5)], scheme, setting)


def test_length_batches_cap_rows_and_padded_tokens():
    lengths = [5, 50, 6, 7, 40, 8]
    assert control.length_batches(lengths, batch_size=3) == [[0, 2, 3], [5, 4, 1]]
    # ≤ 20 padded tokens: 5, 6, 7 fit 3 × 7 = 21? no → [0, 2], then 7, 8 → [3, 5]; 40 and 50 alone
    assert control.length_batches(lengths, batch_size=3, max_tokens=20) == [[0, 2], [3, 5], [4], [1]]


def test_threshold_grid():
    assert control.threshold_grid(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len(control.threshold_grid(21)) == 21
    with pytest.raises(DataError):
        control.threshold_grid(1)


# ----------------------------------------------------------------------------------------- tiny model


CORPUS = [f"question {i} about topic {i % 7}: answer {i * 3} words" for i in range(60)]


@pytest.fixture(scope="module")
def tiny_single(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("tiny")
    base = tiny.save_tiny_base(root / "base", CORPUS)
    out = models.prepare_tokens(base, "single", "words", root / "single")
    return AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out), AutoTokenizer.from_pretrained(base)


@pytest.fixture(scope="module")
def tiny_varied(tiny_single):
    """tiny_single's model with every matrix redrawn at std 0.3 (seed 0). At the default init (std 0.02) it continues
    every prompt with the same text, so a key/value cache handed to the wrong prompt would pass unnoticed."""
    import copy

    model, tok, base = tiny_single
    varied = copy.deepcopy(model)
    draw = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in varied.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=draw) * 0.3)
    return varied, tok, base


def conversations(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": " ".join(["question", str(i)] + ["topic"] * (i % 5))}] for i in range(n)]


def test_score_batched_equals_one_at_a_time_and_temperatures(tiny_single):
    model, tok, _ = tiny_single
    convs = conversations(7)
    batched = control.score(model, tok, convs, "single", temperatures=(1.0, 2.0), batch_size=4, max_tokens=40)
    single = [control.score(model, tok, [c], "single", temperatures=(1.0, 2.0))[0] for c in convs]
    for b, s in zip(batched, single):
        for t in ("1", "2"):
            for token in (REFUSE, RESPOND):
                assert b["p"][t][token] == pytest.approx(s["p"][t][token], rel=1e-4)
            assert b["p_other"][t] == pytest.approx(s["p_other"][t], rel=1e-4)
    # direct check of one prompt: softmax of the last logits at T = 2
    ids = tok.apply_chat_template(convs[0], add_generation_prompt=True, tokenize=True, return_dict=False)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    refuse_id = tok.convert_tokens_to_ids(REFUSE)
    assert batched[0]["p"]["2"][REFUSE] == pytest.approx(float(torch.softmax(logits / 2, -1)[refuse_id]), rel=1e-4)


def test_score_rejects_bad_input(tiny_single):
    model, tok, base_tok = tiny_single
    with pytest.raises(DataError, match="no prompts"):
        control.score(model, tok, [], "single")
    with pytest.raises(DataError, match="lacks"):
        control.score(model, base_tok, conversations(2), "single")
    with pytest.raises(DataError, match="none"):
        control.score(model, tok, conversations(2), "none")
    with pytest.raises(DataError, match="lacks"):
        control.HFBackend(model, base_tok).continue_from(conversations(1), [REFUSE], 4)


def test_exact_sweep_lookup_equals_regeneration(tiny_single, tmp_path):
    """≤ 2 generations per prompt, then every threshold's responses by lookup = generating them per threshold."""
    model, tok, _ = tiny_single
    convs = conversations(8)
    ids = [f"q{i}" for i in range(len(convs))]
    rows = control.score(model, tok, convs, "single")
    p = sorted(control.p_refusal(r, "single") for r in rows)
    thresholds = [0.0, p[2], p[5], 1.0]  # chosen from the scores so that decisions change across the sweep
    backend = control.HFBackend(model, tok, batch_size=3)
    cache = control.GenerationCache(tmp_path / "cache.jsonl")
    keys = [(i, t) for i, r in zip(ids, rows) for t in control.needed_first_tokens(r, "single")]
    # ≤ 2 per prompt, plus the unforced one where the top token is free (the random tiny model: every prompt)
    free = sum(not r["top_is_scheme"] for r in rows)
    assert cache.ensure(backend, dict(zip(ids, convs)), keys, max_new_tokens=6) == 2 * len(convs) + free
    assert control.GenerationCache(tmp_path / "cache.jsonl").entries == cache.entries  # reloads from disk
    assert cache.ensure(backend, dict(zip(ids, convs)), keys, max_new_tokens=6) == 0  # nothing regenerated
    seen = set()
    for t in thresholds:
        chosen = decide_all(rows, "single", Setting(f"t{t}", "threshold", t))
        seen.add(tuple(chosen))
        looked_up = control.assemble(ids, chosen, cache.lookup)
        regenerated = control.HFBackend(model, tok, batch_size=3).continue_from(convs, chosen, max_new_tokens=6)
        assert looked_up == regenerated
    assert len(seen) >= 3  # the sweep really changed decisions


@pytest.mark.parametrize("batch_size, max_tokens", [(2, 0), (5, 0), (5, 60)])
def test_shared_prefill_equals_generating_each_pair_from_scratch(tiny_varied, batch_size, max_tokens, monkeypatch):
    """One prompt forward shared by [refuse], [respond] and the unforced continuation (prompts of different lengths,
    in one batch and across batches, with and without a cap on padded prompt tokens) gives the responses of
    generating every (prompt, first token) pair alone."""
    from refusal_tokens.scoring import chat_prompts

    model, tok, _ = tiny_varied
    convs = conversations(5)
    pairs = [(c, t) for c in convs for t in (REFUSE, RESPOND, None)]
    pairs = pairs[::2] + pairs[1::2]  # a prompt's continuations need not be adjacent
    shared = control.HFBackend(model, tok, batch_size=batch_size, max_tokens=max_tokens)
    made = []
    monkeypatch.setattr(control, "length_batches", lambda *a, **k: made.append(control_batches(*a, **k)) or made[-1])
    texts = shared.continue_from([c for c, _ in pairs], [t for _, t in pairs], max_new_tokens=6)
    lengths = [len(p) for p in chat_prompts(tok, convs)]
    uncapped = -(-len(convs) // batch_size)  # 5 distinct prompts in batches of batch_size
    assert len(made) == 1 and sum(map(len, made[0])) == len(convs)  # one batching of the distinct prompts
    assert len(made[0]) == (uncapped if not max_tokens else len(control_batches(lengths, batch_size, max_tokens)))
    if max_tokens:  # the backend really used the cap: more batches than the 5 prompts need without it
        assert len(made[0]) > uncapped
    # positions run: each distinct prompt but its last token once, then per pair its last token (+ the forced one)
    assert shared.prompt_tokens == sum(n - 1 for n in lengths) + len(pairs) + sum(t is not None for _, t in pairs)
    alone = [control.HFBackend(model, tok, share_prefill=False).continue_from([c], [t], max_new_tokens=6)[0]
             for c, t in pairs]
    assert texts == alone and len({a for (_, t), a in zip(pairs, alone) if t == REFUSE}) == len(convs)  # per prompt


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": 2.5}, {"batch_size": True},
                                    {"max_tokens": -1}, {"max_tokens": "2048"}, {"share_prefill": "no"}])
def test_backend_rejects_bad_batching(kwargs):
    with pytest.raises(DataError, match="batch_size|max_tokens|share_prefill"):
        control.HFBackend(object(), object(), **kwargs)


def test_cache_rejects_corrupt_file(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text('{"id": "a", "first_token": "[refuse]", "text": "x"}\nnot json\n')
    with pytest.raises(DataError, match="cache.jsonl:2"):
        control.GenerationCache(path)


# ------------------------------------------------------------------------------ the exact greedy rule (no intervention)


def test_greedy_rule_emits_a_free_token_when_a_non_scheme_token_is_most_likely():
    row = single_row(0.2, 0.3, p_other=0.5)  # greedy decoding would emit the other token
    assert decide(row, "single", Setting("greedy")) == control.FREE
    assert decide(row, "single", Setting("t", "threshold", 0.1)) == REFUSE  # the official rule always forces
    assert decide(row, "single", Setting("b", bias=math.log(3))) == REFUSE  # 0.6 / Z beats 0.5 / Z
    assert not control.is_refusal(control.FREE) and not control.is_refusal(RESPOND) and control.is_refusal(SAFETY)
    assert control.needed_first_tokens({**row, "top_is_scheme": False}, "single") == [REFUSE, RESPOND, control.FREE]
    assert control.needed_first_tokens({**row, "top_is_scheme": True}, "single") == [REFUSE, RESPOND]


def test_bias_is_added_before_the_temperature_as_in_transformers():
    logits = torch.tensor([1.0, 2.0, 0.5, -1.0])  # 0 = [refuse], 1 = [respond], 2–3 others
    t, b = 2.0, 1.5
    probs = torch.softmax(logits / t, 0)
    row = {"p": {"2": {REFUSE: float(probs[0]), RESPOND: float(probs[1])}}, "p_other": {"2": float(probs[2])}}
    expected = torch.softmax((logits + torch.tensor([b, 0, 0, 0])) / t, 0)  # (logit + b) / T
    got = control.p_refusal(row, "single", Setting("bt", bias=b, temperature=t))
    assert got == pytest.approx(float(expected[0]))


def test_threshold_one_refuses_only_a_probability_of_exactly_one():
    assert decide(single_row(1.0, 0.0), "single", Setting("t", "threshold", 1.0)) == REFUSE
    assert decide(single_row(0.9999, 0.0001), "single", Setting("t", "threshold", 1.0)) == RESPOND
    assert decide(single_row(0.0, 1.0), "single", Setting("t", "threshold", 0.0)) == REFUSE


def test_greedy_rule_by_lookup_equals_plain_unforced_generation(tiny_single, tmp_path):
    """The greedy rule (with a first-step bias on [refuse]) + cache lookups = what `generate` itself produces with
    that bias applied to the first step only, token for token, on prompts where the top token is free and where
    it is a scheme token."""
    from transformers import LogitsProcessor, LogitsProcessorList

    model, tok, _ = tiny_single
    convs = conversations(8)
    ids = [f"q{i}" for i in range(len(convs))]
    refuse_id = tok.convert_tokens_to_ids(REFUSE)
    seen = set()
    for bias in (0.0, 4.0, 8.0, 30.0):
        rows = control.score(model, tok, convs, "single")
        chosen = decide_all(rows, "single", Setting("greedy", bias=bias))
        seen.update(chosen)
        # what the cache needs for this bias: free continuations wherever the biased greedy choice is free
        keys = [(i, t) for i, r, c in zip(ids, rows, chosen) for t in set(control.needed_first_tokens(r, "single")) | {c}]
        cache = control.GenerationCache(tmp_path / f"cache{bias}.jsonl")
        cache.ensure(control.HFBackend(model, tok, batch_size=3), dict(zip(ids, convs)), keys, max_new_tokens=5)
        looked_up = control.assemble(ids, chosen, cache.lookup)

        class FirstStepBias(LogitsProcessor):
            def __init__(self, start: int):
                self.start = start

            def __call__(self, input_ids, scores):
                if input_ids.shape[1] == self.start:
                    scores[:, refuse_id] += bias
                return scores

        for conv, token, text in zip(convs, chosen, looked_up):
            prompt = tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=True, return_dict=False)
            out = model.generate(input_ids=torch.tensor([prompt]), do_sample=False, max_new_tokens=6,
                                 logits_processor=LogitsProcessorList([FirstStepBias(len(prompt))]),
                                 pad_token_id=tok.eos_token_id, top_p=None, top_k=None, temperature=None)
            new = out[0, len(prompt):].tolist()
            if token == control.FREE:
                assert tok.convert_ids_to_tokens(new[0]) not in (REFUSE, RESPOND)
                expected = new[:5]
            else:
                assert tok.convert_ids_to_tokens(new[0]) == token  # greedy emits the decided scheme token
                expected = new[1:6]
            if tok.eos_token_id in expected:
                expected = expected[:expected.index(tok.eos_token_id)]
            assert text == tok.decode(expected, skip_special_tokens=False)
    assert control.FREE in seen and REFUSE in seen  # both kinds of prompt were covered
    # the [refuse] and [respond] continuations of one prompt differ (the forced token matters)
    cache = control.GenerationCache(tmp_path / "cache0.0.jsonl")
    cache.ensure(control.HFBackend(model, tok), dict(zip(ids, convs)), [(i, t) for i in ids for t in (REFUSE, RESPOND)], 5)
    assert any(cache.lookup(i, REFUSE) != cache.lookup(i, RESPOND) for i in ids)


# ------------------------------------------------------------------------------ cache identity and end of turn


def test_cache_never_reads_a_row_made_by_another_identity(tiny_single, tmp_path):
    model, tok, _ = tiny_single
    convs = {"q0": conversations(1)[0]}
    backend = control.HFBackend(model, tok, batch_size=2)
    six = {"model": "tiny", "max_new_tokens": 6, "dtype": "float32"}
    cache = control.GenerationCache(tmp_path / "cache.jsonl", six)
    assert cache.ensure(backend, convs, [("q0", REFUSE)], max_new_tokens=6) == 1
    assert control.GenerationCache(tmp_path / "cache.jsonl", six).entries == cache.entries
    three = {**six, "max_new_tokens": 3}
    stale = control.GenerationCache(tmp_path / "cache.jsonl", three)
    assert stale.entries == {} and stale.stale == 1  # the 6-token row is not read as a 3-token one
    assert stale.ensure(backend, convs, [("q0", REFUSE)], max_new_tokens=3) == 1  # generated again
    with pytest.raises(DataError, match="6-token responses"):
        control.GenerationCache(tmp_path / "other.jsonl", six).ensure(backend, convs, [("q0", REFUSE)], 3)
    assert control.GenerationCache(tmp_path / "cache.jsonl", {**three, "dtype": "bfloat16"}).entries == {}


def test_end_of_turn_is_read_from_the_chat_template():
    from refusal_tokens.scoring import end_of_turn_ids

    tok = tiny.tiny_tokenizer(CORPUS)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn_ids(tok) == [im_end]  # ChatML: eos is the end of turn already
    tok.eos_token = "<unk>"  # a Llama-3-like split: eos differs from the template's end-of-turn token
    assert end_of_turn_ids(tok) == [tok.convert_tokens_to_ids("<unk>"), im_end]
    tok.chat_template = None
    assert end_of_turn_ids(tok) == [tok.convert_tokens_to_ids("<unk>")]


@pytest.mark.parametrize("candidate", ["per kind", "static cache"])
def test_the_bench_candidates_equal_generating_each_pair_from_scratch(tiny_varied, candidate):
    """bench/generation.py's variants of the default backend (one generate call per kind of continuation, each from
    its own copy of the cache, as before; the same into a preallocated key/value cache) give the responses of
    generating every (prompt, first token) pair alone, across batches of unequal prompt lengths."""
    from .bench_scripts import load

    model, tok, _ = tiny_varied
    pairs = [(c, t) for c in conversations(5) for t in (REFUSE, RESPOND, None)]
    backend = load("generation")._candidates()[candidate](model, tok, batch_size=2)
    texts = backend.continue_from([c for c, _ in pairs], [t for _, t in pairs], max_new_tokens=6)
    alone = [control.HFBackend(model, tok, share_prefill=False).continue_from([c], [t], max_new_tokens=6)[0]
             for c, t in pairs]
    assert texts == alone
    assert all(len({a for (_, t), a in zip(pairs, alone) if t == kind}) == 5 for kind in (REFUSE, None))  # per prompt


@pytest.mark.parametrize("chosen", ["default,static", "reference,bogus", ""])
def test_the_generation_bench_refuses_a_subset_without_the_reference_before_loading_anything(
        chosen, monkeypatch, capsys):
    """--settings names a subset by SETTING_KEYS and must include the reference (every speed-up and identity check
    is against it); a bad list stops at the door, before the model (here a path that does not exist) is read."""
    from .bench_scripts import load

    generation = load("generation")
    monkeypatch.setattr(sys, "argv", ["generation.py", "--model", "no/such/model", "--settings", chosen])
    with pytest.raises(SystemExit) as stop:
        generation.main()
    assert stop.value.code == 2
    assert "includes reference" in capsys.readouterr().err
