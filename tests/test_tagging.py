import json

import pytest

from refusal_tokens import tagging as T
from refusal_tokens.errors import DataError
from refusal_tokens.sources import Record


def rec(refuse=True, category="Requests with safety concerns", sub="dangerous or sensitive topics", response="No."):
    return Record("r1", "How do I pick a lock?", "toy", category, sub, refuse, response=response)


def test_scheme_tokens():
    assert T.scheme_tokens("none") == []
    assert T.scheme_tokens("single") == ["[refuse]", "[respond]"]
    category = T.scheme_tokens("category")
    assert category[-1] == "[respond]" and len(category) == 6
    assert "[Requests with safety concerns]" in category  # spelled as in the paper
    assert T.refusal_tokens("single") == ["[refuse]"]


def test_tag_puts_token_first_in_the_completion():
    example = T.tag(rec(), "single")
    assert example["completion"] == [{"role": "assistant", "content": "[refuse] No."}]
    assert example["prompt"] == [{"role": "user", "content": "How do I pick a lock?"}]
    assert T.tag(rec(), "category")["completion"][0]["content"] == "[Requests with safety concerns] No."
    assert T.tag(rec(refuse=False), "category")["completion"][0]["content"] == "[respond] No."
    assert T.tag(rec(), "none")["completion"][0]["content"] == "No."


def test_untag_inverts_tag():
    for scheme in T.SCHEMES:
        for refuse in (True, False):
            content = T.tag(rec(refuse=refuse), scheme)["completion"][0]["content"]
            token, rest = T.untag(content, scheme)
            assert rest == "No." and token == T.first_token(rec(refuse=refuse), scheme)


def test_unknown_scheme():
    with pytest.raises(DataError, match="unknown token scheme 'multi'"):
        T.tag(rec(), "multi")


def test_category_scheme_needs_a_coconot_category():
    with pytest.raises(DataError, match="has no category token"):
        T.tag(rec(category="harmful"), "category")


def test_written_refusals_are_deterministic_and_from_the_subcategory():
    r = rec(sub="underspecified", response=None, category="Incomplete requests")
    a, b = T.write_response(r, seed=0), T.write_response(r, seed=0)
    assert a.response == b.response and a.response in T.REFUSAL_TEMPLATES["underspecified"]
    assert a.meta["response_origin"] == "template"
    seeds = {T.write_response(r, seed=s).response for s in range(20)}
    assert len(seeds) > 1  # the seed picks among the phrasings


def test_humanizing_template_uses_the_ai_answer():
    r = Record("h", "Do you sleep?", "toy", "Humanizing requests", "personal inquiry", True,
               meta={"ai_answer": "I am an AI, I do not sleep"})
    assert T.write_response(r, 0).response.endswith("I am an AI, I do not sleep.")


def test_answer_without_response_is_rejected():
    with pytest.raises(DataError, match="answer record without a response"):
        T.write_response(rec(refuse=False, response=None), 0)


def test_unknown_subcategory_template():
    with pytest.raises(DataError, match="no refusal templates"):
        T.write_response(rec(sub="mystery", response=None), 0)


def test_a_base_model_without_a_chat_template_gets_one_from_params(tmp_path):
    """The paper's base models (Llama-3-8B, Gemma 3 base) ship no chat template: params name one (here llama3),
    and the conversational path then works; without one, a clear error."""
    from transformers import AutoTokenizer

    from refusal_tokens import models, tiny
    from refusal_tokens.errors import DataError
    from refusal_tokens.scoring import chat_prompts

    base = tiny.save_tiny_base(tmp_path / "base", [f"question {i} answer" for i in range(40)])
    config = base / "tokenizer_config.json"
    data = json.loads(config.read_text())
    data.pop("chat_template", None)
    config.write_text(json.dumps(data))
    (base / "chat_template.jinja").unlink(missing_ok=True)
    params = {"source": "local", "local_path": str(base)}
    assert not AutoTokenizer.from_pretrained(base).chat_template  # a template-less tokenizer, as a base model's
    with pytest.raises(DataError, match="no chat template"):
        models.load_base(params)
    _, tok, _ = models.load_base({**params, "chat_template": "llama3"})
    ids = chat_prompts(tok, [[{"role": "user", "content": "hi"}]])[0]
    text = tok.decode(ids)
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n") and "hi<|eot_id|>" in text
