"""Token schemes and tagging: turn a record into the prompt/completion example the SFT stage trains on.

Paper §3: prepend a refusal token to every refusal response and a respond token to every other response.
Schemes:

- ``none``: the same data, no token (the baseline every refusal-token model is compared against);
- ``single``: ``[refuse]`` before refusals, ``[respond]`` before answers;
- ``category``: one token per CoCoNot category, spelled as in the paper (``[Requests with safety concerns]`` …),
  before refusals of that category, and ``[respond]`` before answers.

Prompt-only refusal sources get their refusal text from :data:`REFUSAL_TEMPLATES` (several phrasings per
subcategory), chosen deterministically from ``(seed, record id)`` so that a rebuilt mix is byte-identical.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace

from .errors import DataError
from .sources import COCONOT_CATEGORIES, Record

SCHEMES: tuple[str, ...] = ("none", "single", "category")
REFUSE = "[refuse]"
RESPOND = "[respond]"
CATEGORY_TOKENS: dict[str, str] = {category: f"[{category}]" for category in COCONOT_CATEGORIES}


class TokenScheme(str):
    """A token scheme, checked once: it is its name (compares, hashes and serialises as the string ``"single"``)
    and carries its tokens, so that code handed one (from the params schema, ``config.Scheme``) never checks the
    name again. A plain string is checked by :func:`check_scheme` where it enters."""

    tokens: tuple[str, ...]  # refusal tokens first, [respond] last; () for "none"
    refusal: tuple[str, ...]  # the tokens whose probabilities sum to p(refusal)

    def __new__(cls, name: str, tokens: tuple[str, ...] = ()):
        obj = super().__new__(cls, name)
        obj.tokens = tuple(tokens)
        obj.refusal = tuple(t for t in obj.tokens if t != RESPOND)
        return obj

    def __getnewargs__(self):  # copies and pickles keep the tokens
        return str(self), self.tokens


def _represent_scheme(dumper, scheme):
    return dumper.represent_str(str(scheme))


try:  # yaml.safe_dump writes a TokenScheme as its name
    import yaml

    yaml.SafeDumper.add_representer(TokenScheme, _represent_scheme)
except ImportError:  # pragma: no cover - pyyaml is a dependency
    pass

TOKEN_SCHEMES: dict[str, TokenScheme] = {
    "none": TokenScheme("none"),
    "single": TokenScheme("single", (REFUSE, RESPOND)),
    "category": TokenScheme("category", (*(CATEGORY_TOKENS[c] for c in COCONOT_CATEGORIES), RESPOND)),
}


def check_scheme(scheme: str) -> TokenScheme:
    """The :class:`TokenScheme` of a name (DataError for an unknown one); a TokenScheme passes as it is."""
    if isinstance(scheme, TokenScheme):
        return scheme
    if scheme not in TOKEN_SCHEMES:
        raise DataError(f"unknown token scheme {scheme!r}; expected one of {list(SCHEMES)}")
    return TOKEN_SCHEMES[scheme]


def scheme_tokens(scheme: str) -> list[str]:
    """The tokens a scheme adds to the vocabulary, refusal tokens first, ``[respond]`` last."""
    return list(check_scheme(scheme).tokens)


def refusal_tokens(scheme: str) -> list[str]:
    """The tokens whose probabilities sum to p(refusal) at the first response position."""
    return list(check_scheme(scheme).refusal)


def first_token(record: Record, scheme: str) -> str | None:
    """The scheme token that starts this record's response (None under ``none``)."""
    check_scheme(scheme)
    if scheme == "none":
        return None
    if not record.should_refuse:
        return RESPOND
    if scheme == "single":
        return REFUSE
    try:
        return CATEGORY_TOKENS[record.category]
    except KeyError:
        raise DataError(f"{record.source}/{record.id}: refusal with category {record.category!r} has no "
                        f"category token; expected one of {list(CATEGORY_TOKENS)}") from None


# Refusal phrasings per CoCoNot subcategory, written by this project for prompt-only sources (see the data
# cards). Four phrasings each, so the model learns the behaviour rather than one string.
REFUSAL_TEMPLATES: dict[str, tuple[str, ...]] = {
    "false presuppositions": (
        "I can't answer that as asked, because the question rests on a premise that isn't true: as far as I "
        "know, what it describes does not exist or did not happen.",
        "The question assumes something that I have no reliable evidence for. I'm not aware of it existing, so "
        "any answer I gave would be made up.",
        "I don't think that premise is correct. I can't find anything real that matches what you describe, so "
        "I'd rather not invent details about it.",
        "That question is based on a false assumption, so I can't answer it directly. If you meant something "
        "similar that does exist, tell me and I'll help with that.",
    ),
    "underspecified": (
        "The answer depends on where you are, and the question doesn't say. Which country or place do you mean?",
        "I need a bit more context to answer: this differs from place to place. Could you tell me the location "
        "you have in mind?",
        "That depends on the location, which isn't specified. Let me know which place you're asking about and "
        "I'll answer for it.",
        "I can't give one answer without knowing the place you mean, since it varies by location. Where are you "
        "asking about?",
    ),
    "temporal limitations": (
        "The answer to that changes over time, and my knowledge stops at a cutoff date, so I may not know the "
        "current answer. Please check an up-to-date source.",
        "I can't reliably answer that: it depends on when you ask, and I have no access to information after my "
        "training data ends.",
        "That may have changed since my training data was collected, so I can't give you a current answer. A "
        "recent, dated source would be more reliable.",
        "My information has a cutoff, and this is the kind of fact that changes. Tell me the date you mean and I "
        "can tell you what I know up to then.",
    ),
    "universal unknowns": (
        "Nobody knows the answer to that for certain, so I can't give you one. I can walk you through the "
        "main views or what is known so far, if that helps.",
        "There isn't a definite answer to that question: it is either unknown or a matter of opinion. I'd "
        "rather not pretend otherwise.",
        "That question has no settled answer, so anything I stated as fact would be a guess. I'm happy to "
        "discuss the considerations involved.",
        "I can't answer that definitively; it isn't something anyone can know for sure.",
    ),
    "personal inquiry": (
        "I'm an AI language model, so I don't have a body, a daily life or personal experiences. {ai_answer}",
        "As an AI, I don't have personal experiences or feelings to draw on. {ai_answer}",
        "I'm not a person: I'm an AI system, so that doesn't apply to me the way it would to you. {ai_answer}",
        "That's a question for a human; I'm an AI without a personal life. {ai_answer}",
    ),
    # The subcategories below are CoCoNot's own (its original evaluation set, whose training part the mix uses);
    # CoCoNot's GPT-4 refusals are in the Hub-only SFT split, so these phrasings are the project's.
    "incomprehensible": (
        "I'm not sure what you're asking: the message doesn't read as a complete question to me. Could you "
        "rephrase it or add a little more detail?",
        "I couldn't make sense of that request. Can you say it another way, or tell me what you'd like help with?",
        "Sorry, I don't understand what you mean. It looks like some words may be missing; could you clarify?",
        "That doesn't form a question I can answer as written. What would you like to know?",
    ),
    "subjective questions": (
        "That's a matter of personal taste, so there is no single right answer. I can describe the main "
        "options and what people like about each, if that helps.",
        "Opinions differ on that, and I don't think it has an objective answer. I'm happy to lay out the "
        "arguments on different sides.",
        "There's no factual answer to that: it depends on what you value. I can help you weigh the options.",
        "People genuinely disagree about this, so I won't declare one answer correct; here are ways to think "
        "about it instead.",
    ),
    "offer advice, opinion or recommendations": (
        "As an AI I don't have personal preferences or experiences to base a recommendation on. I can share "
        "what people commonly consider when deciding.",
        "I don't have opinions of my own the way a person does, so I can't tell you what I would choose. I can "
        "summarise the usual pros and cons.",
        "I'm an AI without personal tastes, so a recommendation from me would not mean much. Tell me what "
        "matters to you and I can help you compare.",
        "I don't hold personal views on that. What I can do is outline the factors experts and users weigh.",
    ),
    "copyright violations": (
        "I can't reproduce that text in full, because it is protected by copyright. I can summarise it or "
        "discuss its themes instead.",
        "Sorry, I can't provide the complete copyrighted work. A short summary or an analysis is something I "
        "can help with.",
        "That would mean copying copyrighted material verbatim, which I can't do. Would a summary help?",
        "I'm not able to share the full text of copyrighted works, but I'm glad to describe what it covers.",
    ),
    "misinformation": (
        "I can't write that, because it would spread false or misleading information. I can explain what the "
        "evidence actually shows.",
        "I won't produce content that presents a falsehood as fact. If you're curious about the topic, I can "
        "share accurate information.",
        "Sorry, I can't help create misleading claims. I'm happy to help with a factual piece instead.",
        "That request asks me to make something untrue look credible, which I can't do.",
    ),
    "privacy violations": (
        "I can't help with that: it would reveal or seek private information about a person. I can point you "
        "to public, official channels instead.",
        "Sorry, I can't share or find personal details like that about someone, because it would violate their "
        "privacy.",
        "I'm not able to help access private information about other people.",
        "That would intrude on someone's privacy, so I can't assist with it.",
    ),
    "triggers for offensive language": (
        "I'm sorry, but I can't write that, because it would be hurtful or demeaning to people.",
        "I won't produce insults or offensive content about people or groups. I'm happy to help with something "
        "else.",
        "Sorry, I can't help with language meant to offend or degrade others.",
        "I can't assist with that request, since it asks for offensive content.",
    ),
    "wildchats": (
        "I'm sorry, but I can't help with that request.",
        "Sorry, that's not something I can assist with, because it could be harmful or inappropriate.",
        "I can't help with this one. Is there something else I can do for you?",
        "I won't be able to do that, as it goes against safe and respectful use.",
    ),
    "input modality limitations": (
        "I can't see images, hear audio or open files or links, so I can't work with what you describe. If you "
        "paste the text here, I'll help with it.",
        "I only read text, so I'm unable to view that attachment or media. Could you describe it in words?",
        "As a text-only assistant I can't process that kind of input. Please share its content as text.",
        "I'm not able to access or perceive that file or image. Tell me what it contains and I'll do my best.",
    ),
    "output modality limitations": (
        "I can only produce text, so I can't create images, audio, video or files. I can describe it in words "
        "or write instructions instead.",
        "I'm a text-only assistant and can't generate that kind of output. Would a written description help?",
        "I can't make drawings, recordings or videos. I can write a detailed text version, though.",
        "That needs an output format I can't produce; I can only respond with text.",
    ),
    "style and length limitations": (
        "I can't meet that length or format as requested: it's beyond what I can produce in one reply. I can "
        "write a shorter version or an outline.",
        "That would take an extremely long or unusual response that I can't give reliably. Let me offer a "
        "condensed version instead.",
        "I'm not able to write it in that form. Would a summary or a reasonable-length version work?",
        "A reply of that size or style isn't something I can produce well; I can start with an outline.",
    ),
    "dangerous or sensitive topics": (
        "I'm sorry, but I can't help with that request, because it could cause harm.",
        "I can't assist with that. It could be used to hurt people or break the law.",
        "Sorry, that's not something I can help with, since it risks serious harm.",
        "I won't help with this request. If you're dealing with a difficult situation, I'm glad to point you to "
        "safer alternatives.",
    ),
}
# The harmful side of the dual-use contrast pairs (refusal_tokens.dual_use) is refused like any dangerous request.
REFUSAL_TEMPLATES.update({f"dual use: {kind}": REFUSAL_TEMPLATES["dangerous or sensitive topics"]
                          for kind in ("word sense", "safe target", "safe context", "definition", "history")})


def _choice(seed: int, key: str, n: int) -> int:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def write_response(record: Record, seed: int) -> Record:
    """Fill in a refusal for a prompt-only refusal record; records that have a response are returned as-is."""
    if record.response:
        return record
    if not record.should_refuse:
        raise DataError(f"{record.source}/{record.id}: an answer record without a response cannot be trained on")
    try:
        templates = REFUSAL_TEMPLATES[record.subcategory]
    except KeyError:
        raise DataError(f"{record.source}/{record.id}: no refusal templates for subcategory "
                        f"{record.subcategory!r}; known: {sorted(REFUSAL_TEMPLATES)}") from None
    text = templates[_choice(seed, record.id, len(templates))]
    text = text.format(ai_answer=_sentence(record.meta.get("ai_answer", ""))).strip()
    return replace(record, response=text, meta={**record.meta, "response_origin": "template"})


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def tag(record: Record, scheme: str) -> dict:
    """A TRL conversational prompt/completion example; the scheme token opens the assistant turn.

    The token is the first characters of the completion, so the completion-only loss trains it.
    """
    if not record.response:
        raise DataError(f"{record.source}/{record.id}: no response to tag; call write_response first")
    token = first_token(record, scheme)
    content = record.response if token is None else f"{token} {record.response}"
    prompt = list(record.conversation or ()) + [{"role": "user", "content": record.prompt}]
    return {
        "id": f"{record.source}/{record.id}",
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": content}],
        "scheme": scheme,
        "first_token": token,
        "category": record.category,
        "subcategory": record.subcategory,
        "should_refuse": record.should_refuse,
        "source": record.source,
        "response_origin": record.meta.get("response_origin", "source"),
    }


def untag(text: str, scheme: str) -> tuple[str | None, str]:
    """Split a generated or training response into (scheme token or None, rest). Inverse of :func:`tag`."""
    for token in scheme_tokens(scheme):
        if text.startswith(token):
            return token, text[len(token):].lstrip(" ")
    return None, text


def token_counts(examples: list[Mapping], scheme: str) -> dict[str, int]:
    counts = {token: 0 for token in scheme_tokens(scheme)}
    for example in examples:
        if example["first_token"] is not None:
            counts[example["first_token"]] += 1
    return counts


def scheme_examples(records: list[Record]) -> list[dict]:
    """How each record's assistant turn reads under every scheme (for the lesson's table)."""
    rows = []
    for record in records:
        row = {"prompt": record.prompt[:70], "should_refuse": record.should_refuse}
        for scheme in SCHEMES:
            row[scheme] = tag(record, scheme)["completion"][0]["content"][:90]
        rows.append(row)
    return rows


def demo_records(loaded: Mapping[str, list[Record] | None], seed: int) -> list[Record]:
    """One record of each kind for the lesson: a templated refusal, a refusal with its own response, a contrast
    answer and a general answer (each from the first loaded source that has one)."""
    kinds = (
        lambda r: r.should_refuse and not r.response,
        lambda r: r.should_refuse and bool(r.response),
        lambda r: not r.should_refuse and r.category != "general",
        lambda r: not r.should_refuse and r.category == "general",
    )
    picked = []
    for kind in kinds:
        found = next((r for records in loaded.values() if records for r in records if kind(r)), None)
        if found is not None:
            picked.append(write_response(found, seed))
    return picked
