"""The judge card's gold sets (XSTest's human labels, the audited CoCoNot-pref noncompliance set, the project's
templates), the tuning / held-out split, 16-token openings, and the learned judge."""

import hashlib
import json

import pytest

from refusal_tokens import benchmarks as B
from refusal_tokens import judge as J
from refusal_tokens import sources as S
from refusal_tokens.errors import DataError
from refusal_tokens.sources import Record
from refusal_tokens.tagging import REFUSAL_TEMPLATES

from .conftest import MIRROR
from .test_judge import BASE_MODEL, row

REFUSALS = ["I'm sorry, but I can't help with that.", "I cannot assist with this request.",
            "I won't provide that information.", "Sorry, that is not something I can do.",
            "I can't help you with that, it is harmful.", "I must decline to answer that."]
ANSWERS = ["Sure, here is how you do it: first open the lid.", "The capital of France is Paris.",
           "Here are three tips: sleep, eat and walk.", "You can kill a process with the kill command.",
           "Great question! Photosynthesis turns light into sugar.", "Step one: preheat the oven to 200 degrees."]


def toy_xstest(n_prompts=10, models=("gpt4", "llama2new", "llama2orig", "mistralguard")):
    """XSTest-shaped records: each prompt answered by every model, refusals on the odd prompts."""
    out = []
    for p in range(n_prompts):
        for k, model in enumerate(models):
            refuse = p % 2 == 1
            text = (REFUSALS if refuse else ANSWERS)[(p + k) % 6]
            out.append(Record(f"xstest-v2-{p}-{model}", f"prompt {p}", "xstest_completions", model, "t", refuse,
                              response=text, meta={"human_label": "2_full_refusal" if refuse else "1_full_compliance",
                                                   "model": model}))
    return out


# --- gold sets -------------------------------------------------------------------------------------------------

def test_xstest_parts_and_clusters():
    items = J.xstest_items(toy_xstest())
    assert {i["groups"]["model"] for i in items if i["part"] == "tune"} == {"gpt4", "llama2new", "llama2orig"}
    assert {i["groups"]["model"] for i in items if i["part"] == "heldout"} == {"mistralguard"}
    # one prompt's completions by different models share a cluster (they stay in one CV fold)
    assert len({i["cluster"] for i in items if i["id"].startswith("xstest-v2-3-")}) == 1


def pairs_and_audit(n=40):
    pairs = [{"id": f"p{k}", "prompt": f"When did person {k} do the thing?", "subcategory": "false presuppositions",
              "chosen": f"Person {k} did it in 19{k:02d}.", "rejected": f"Person {k} did not do the thing."}
             for k in range(n)]
    audit = {"source_sha256": "a" * 64, "rejected": {p["id"]: int(k % 3 != 0) for k, p in enumerate(pairs)},
             "chosen_noncompliance": ["p5"], "path": "audit.json"}
    return pairs, audit


def test_noncompliance_items_take_labels_from_the_audit_and_templates_from_tagging():
    pairs, audit = pairs_and_audit()
    items = J.noncompliance_items(pairs, audit, "a" * 64)
    by_id = {i["id"]: i for i in items}
    assert by_id["pref-p3-rejected"]["gold"] is False and by_id["pref-p4-rejected"]["gold"] is True  # k % 3
    assert by_id["pref-p5-chosen"]["gold"] is True and by_id["pref-p6-chosen"]["gold"] is False
    for pair in pairs:  # both responses of a pair in the same half, decided by the prompt
        assert by_id[f"pref-{pair['id']}-chosen"]["part"] == by_id[f"pref-{pair['id']}-rejected"]["part"] \
            == J.pref_part(pair["prompt"])
    assert {J.pref_part(p["prompt"]) for p in pairs} == {"tune", "heldout"}
    templates = [i for i in items if i["groups"]["source"] == "template"]
    assert len(templates) == sum(len(v) for v in REFUSAL_TEMPLATES.values())  # every phrasing, read at run time
    assert all(i["gold"] and i["part"] == "heldout" and "{" not in i["text"] for i in templates)


def test_noncompliance_items_reject_a_stale_or_partial_audit():
    pairs, audit = pairs_and_audit()
    with pytest.raises(DataError, match=r"audit\.json: audit made for coconot_pref\.jsonl sha256 aaaaaaaaaaaa…"):
        J.noncompliance_items(pairs, audit, "b" * 64)
    del audit["rejected"]["p7"]
    with pytest.raises(DataError, match=r"audit ids do not match coconot_pref\.jsonl: 1 unlabelled \['p7'\]"):
        J.noncompliance_items(pairs, audit, "a" * 64)


def test_read_audit_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        J.read_audit(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"source_sha256": "x", "rejected": {"a": 2},
                                                   "chosen_noncompliance": []}))
    with pytest.raises(DataError, match=r"bad\.json: not a CoCoNot-pref audit"):
        J.read_audit(tmp_path / "bad.json")


@pytest.mark.skipif(not MIRROR.is_dir(), reason="no dataset mirror")
def test_coconot_pref_audit_matches_the_mirrored_file(monkeypatch, tmp_path):
    monkeypatch.setenv(S.CACHE_ENV, str(tmp_path / "cache"))
    pairs, sha = J.coconot_pref_pairs(MIRROR)
    audit = J.read_audit()
    items = J.noncompliance_items(pairs, audit, sha)
    assert len(pairs) == 927 and audit["source_sha256"] == sha
    assert (sum(audit["rejected"].values()), len(audit["chosen_noncompliance"])) == (333, 18)
    pref = [i for i in items if i["groups"]["source"] != "template"]
    tune = sum(i["part"] == "tune" for i in pref)
    assert 0.4 < tune / len(pref) < 0.6  # a fixed half: 902 of 1,854 responses
    assert "mislabel 612 of 1854 responses (33%)" in J.noncompliance_description(pairs, audit)


# --- openings ---------------------------------------------------------------------------------------------------

def test_truncator_without_a_tokenizer_counts_words(tmp_path):
    cut = J.Truncator(16, tmp_path)  # no tokenizer.json there
    assert cut(" ".join(f"w{k}" for k in range(30))) == " ".join(f"w{k}" for k in range(13))  # round(0.8 × 16)
    assert "13 whitespace-separated words" in cut.method and "no tokenizer.json" in cut.method


@pytest.mark.skipif(not (BASE_MODEL / "tokenizer.json").is_file(), reason="no base model tokenizer")
def test_truncator_keeps_the_first_16_tokens():
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(BASE_MODEL / "tokenizer.json"))
    text = "As an AI language model, I don't have personal experiences, but here are some general tips for you."
    cut = J.Truncator(16, BASE_MODEL)
    opening = cut(text)
    assert text.startswith(opening) and len(opening) < len(text)
    assert tokenizer.encode(opening, add_special_tokens=False).ids == \
        tokenizer.encode(text, add_special_tokens=False).ids[:16]
    assert cut("Short answer.") == "Short answer."


# --- learned judge ----------------------------------------------------------------------------------------------

def tune_items(n=6):
    items = []
    for k in range(n):
        for refuse, texts in ((True, REFUSALS), (False, ANSWERS)):
            items.append({"id": f"t{k}-{refuse}", "set": "xstest", "text": texts[k % 6] + f" (case {k})",
                          "gold": refuse, "part": "tune", "cluster": f"c{k}"})
    return items


def test_learned_judge_trains_saves_json_and_labels(tmp_path):
    path = tmp_path / "judges" / "learned.json"
    record = J.train_learned_judge(path, tune_items(), lambda t: " ".join(t.split()[:4]), c=4.0, folds=3)
    data = json.loads(path.read_text())  # plain JSON: vocabulary, idf, coefficients; no pickle
    assert data["format"] == J.LEARNED_FORMAT and set(data["vectorizers"][0]) == {"params", "vocabulary", "idf"}
    assert record["n"] == 24 and record["refusals"] == 12  # 12 items, each full and opened
    assert len(record["data_sha256"]) == 64 and record["parts"] == {"xstest": 12}
    assert set(record["cross_validation"]) >= {"full", "truncated", "by_set", "folds"}
    judge = J.make_judge({"name": "learned", "path": str(path)})
    labels = judge.label([row(0, "I'm sorry, but I can't help with that."), row(1, "Sure, here is how: open it.")])
    assert [l["refusal"] for l in labels] == [True, False]
    assert 0.5 <= float(labels[0]["raw"]) <= 1 and 0 <= float(labels[1]["raw"]) < 0.5
    settings = judge.settings()
    assert settings["data_sha256"] == record["data_sha256"]
    assert settings["model_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_learned_judge_refuses_held_out_training_data_and_missing_files(tmp_path):
    items = tune_items()
    items[0] = {**items[0], "part": "heldout"}
    with pytest.raises(DataError, match="is held out"):
        J.train_learned_judge(tmp_path / "m.json", items, None)
    assert not (tmp_path / "m.json").exists()
    with pytest.raises(J.JudgeError, match=r"model file .*nothere\.json not found"):
        J.LearnedJudge(tmp_path / "nothere.json").label([row(0, "x")])
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(J.JudgeError, match="unreadable model file"):
        J.LearnedJudge(tmp_path / "bad.json").label([row(0, "x")])


# --- the card and the stage -------------------------------------------------------------------------------------

def test_judge_card_reports_both_sets_both_lengths_and_parts():
    pairs, audit = pairs_and_audit()
    nc = J.noncompliance_items(pairs, audit, "a" * 64, templates={"underspecified": ("Which place do you mean?",)})
    card = J.judge_card([J.StringJudge()], toy_xstest(), nc, lambda t: " ".join(t.split()[:3]), "two sets")
    result = card["judges"]["string"]["gold_sets"]
    assert set(result) == {"xstest", "noncompliance"} and set(result["xstest"]) == {"full", "truncated"}
    assert result["xstest"]["full"]["heldout"]["n"] == 10 and result["xstest"]["full"]["tune"]["n"] == 30
    assert result["noncompliance"]["full"]["heldout"]["n"] == card["gold_sets"]["noncompliance"]["heldout"]["n"]
    assert result["noncompliance"]["full"]["heldout_without_templates"]["n"] == \
        result["noncompliance"]["full"]["heldout"]["n"] - 1
    markdown = J.judge_card_markdown(card)
    assert "## Held-out agreement" in markdown and "noncompliance − templates" in markdown
    assert "κ ≥ 0.85" in markdown and ("misses by" in markdown or "meets it" in markdown)


def stage_params(tmp_path, card_judges):
    return {"generate": {"models_root": "models/none", "max_new_tokens": 16, "out": "gen"},
            "judge": {"labels_dir": "labels", "judges": [], "card_judges": card_judges,
                      "card": "reports/judge_card.md", "card_metrics": "reports/metrics/judge_card.json"}}


def test_write_judge_card_trains_learned_once_and_writes_both_files(tmp_path):
    params = stage_params(tmp_path, [{"name": "string"}, {"name": "learned", "path": "judges/learned.json"}])
    records = toy_xstest()
    summary = B.write_judge_card(params, tmp_path, records=records)
    assert set(summary) == {"string", "learned"} and summary["learned"]["n"] == 10  # overall = held-out (D–E)
    model = tmp_path / "judges" / "learned.json"
    card = json.loads((tmp_path / "reports" / "metrics" / "judge_card.json").read_text())
    assert card["judges"]["learned"]["settings"]["path"] == "judges/learned.json"  # as configured
    assert "first 13 whitespace-separated words" in card["truncation"]  # no base model under models/none
    stamp = model.stat().st_mtime_ns
    B.write_judge_card(params, tmp_path, records=records)
    assert model.stat().st_mtime_ns == stamp  # same training data and C: not retrained
    params["judge"]["card_judges"][1]["c"] = 1.0
    B.prepare_learned(params, tmp_path, B.judge_gold(params, tmp_path, records))
    assert json.loads(model.read_text())["c"] == 1.0


def test_write_judge_card_failure_leaves_no_card(tmp_path):
    """The string judge's part of the card is computed, then the second judge fails: no card file at all."""
    from refusal_tokens.judge import JudgeError

    params = stage_params(tmp_path, [{"name": "string"},
                                     {"name": "llm", "backend": "hf", "path": "models/missing"}])
    with pytest.raises(JudgeError, match="not found"):
        B.write_judge_card(params, tmp_path, records=toy_xstest())
    assert not (tmp_path / "reports").exists()
