"""Registry of every public data source the study reads, and how each one is obtained and parsed.

Each source names its canonical location (a raw-file URL at a pinned commit, or a Hub dataset id at a pinned
revision), the sha256 of every file, its licence and its role (``train`` stand-in, ``eval`` benchmark or
``judge`` validation set). ``load(name)`` yields one normalised :class:`Record` type for all of them.

Where a file comes from, in order (``fetch``):

1. the offline mirror, when one is configured (``REFUSAL_TOKENS_MIRROR`` or ``mirror=``), laid out as
   ``<mirror>/<folder>/<file>`` (here ``../shared/datasets``);
2. the local cache (``REFUSAL_TOKENS_CACHE``, default ``~/.cache/refusal_tokens``);
3. a download from the canonical URL into the cache;

and every copy is sha256-verified before it is read. Hub-only sets go through ``datasets.load_dataset`` with a
pinned revision. A set that cannot be had raises :class:`SourceUnavailable` (benchmark code marks it "not run");
input that is there but wrong raises :class:`DataError` naming the file and line.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError, SourceUnavailable
from .files import iter_jsonl

MIRROR_ENV = "REFUSAL_TOKENS_MIRROR"
CACHE_ENV = "REFUSAL_TOKENS_CACHE"

# CoCoNot's five noncompliance categories, spelled as in the CoCoNot data and the paper's category tokens.
COCONOT_CATEGORIES: tuple[str, ...] = (
    "Incomplete requests",
    "Unsupported requests",
    "Indeterminate requests",
    "Humanizing requests",
    "Requests with safety concerns",
)
GENERAL = "general"  # category of general-chat training rows (answered, no CoCoNot category)
# CoCoNot's two test sets as the study reads them together: original (should refuse), contrast (should answer)
COCONOT_SETS = ("coconot_original", "coconot_contrast")
TRAIN_CATEGORIES: tuple[str, ...] = COCONOT_CATEGORIES + (GENERAL,)

csv.field_size_limit(1 << 26)  # some completions / conversations are long cells


@dataclass(frozen=True)
class Record:
    """One prompt, normalised across sources.

    ``should_refuse`` is the label the study trains and evaluates against (CoCoNot original = True, contrast
    = False). ``response`` is the reference answer or refusal when the source has one. ``conversation`` holds
    earlier turns for multi-turn sources, as role/content dicts. ``meta`` keeps source-specific fields that
    later stages need (e.g. XSTest's human refusal label).
    """

    id: str
    prompt: str
    source: str
    category: str
    subcategory: str
    should_refuse: bool
    response: str | None = None
    conversation: tuple[Mapping[str, str], ...] | None = None
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteFile:
    """A file at a pinned upstream location. ``path`` is its place in the mirror and in the cache."""

    path: str
    url: str
    sha256: str


@dataclass(frozen=True)
class HubSpec:
    """A Hub-only dataset, loaded through ``datasets.load_dataset(id, config, split=…, revision=…)``."""

    id: str
    config: str | None
    split: str
    revision: str  # a commit hash where one is known; "main" is flagged in the card as unpinned
    kwargs: Mapping[str, object] = field(default_factory=dict)


Parser = Callable[["Source", Mapping[str, Path]], Iterator[Record]]
HubParser = Callable[["Source", Iterable[Mapping[str, object]]], Iterator[Record]]


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    role: str  # "train" | "dev" (scored to choose settings) | "eval" (test: read only to report) | "judge"
    origin: str  # upstream repository / Hub id and commit
    licence: str
    files: tuple[RemoteFile, ...] = ()
    parser: Parser | None = None
    hub: HubSpec | None = None
    hub_parser: HubParser | None = None
    categories: tuple[str, ...] | None = None  # allowed values of Record.category; None = free (native)
    category_mapping: str = ""  # prose: how the source maps onto CoCoNot's categories
    content_warning: str = ""
    notes: str = ""
    built_here: bool = False  # written by this project (no file, no Hub id): the parser builds the records


# ---------------------------------------------------------------------------------------------------------
# Getting a file: mirror → cache → download, always sha256-verified.


def mirror_dir(mirror: str | os.PathLike | None = None) -> Path | None:
    value = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    return Path(value).expanduser() if value else None


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    value = cache if cache is not None else os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "refusal_tokens"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, expected: str, where: str) -> Path:
    actual = sha256_of(path)
    if actual != expected:
        raise DataError(
            f"{path}: sha256 mismatch ({where}): expected {expected}, got {actual}. "
            "The file is not the pinned upstream version; delete it or fix the mirror."
        )
    return path


def fetch(
    file: RemoteFile,
    source: str,
    mirror: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    timeout: float = 30.0,
) -> Path:
    """Return a verified local path for ``file``; see the module docstring for the order."""
    root = mirror_dir(mirror)
    if root is not None and (root / file.path).is_file():
        return _verify(root / file.path, file.sha256, "mirror")
    cached = cache_dir(cache) / file.path
    if cached.is_file():
        return _verify(cached, file.sha256, "cache")
    hint = (
        f"set {MIRROR_ENV} to a folder holding {file.path!r}, or place the file at {cached} "
        f"(download {file.url})"
    )
    made = [p for p in (cached.parent, *cached.parent.parents) if not p.exists()]  # removed again on failure
    cached.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=cached.parent, prefix=".part-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(file.url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        _verify(tmp, file.sha256, f"download of {file.url}")
        tmp.replace(cached)  # only a verified file ever appears under its real name
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise SourceUnavailable(source, f"cannot download {file.path} ({error}); {hint}") from None
    finally:
        tmp.unlink(missing_ok=True)
        if not cached.is_file():  # a failed download leaves no empty folders behind
            for folder in made:
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
    return cached


# ---------------------------------------------------------------------------------------------------------
# Readers that say which file and line is wrong.


def read_json(path: Path) -> object:
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{error.lineno}: malformed JSON ({error.msg})") from None


def read_csv(path: Path, required: Iterable[str]) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, row)``; a missing column or a row with the wrong number of fields is a DataError."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
            missing = [name for name in required if name not in header]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing}; found {header}")
            for row in reader:
                if None in row or any(value is None for value in row.values()):
                    raise DataError(
                        f"{path}:{reader.line_num}: row has {len(row) - (None in row)} fields where the "
                        f"header has {len(header)}"
                    )
                yield reader.line_num, row
        except csv.Error as error:
            raise DataError(f"{path}:{reader.line_num}: malformed CSV ({error})") from None


def need(row: Mapping, keys: Iterable[str], where: str) -> None:
    missing = [key for key in keys if key not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}")


def _json_rows(path: Path, keys: Iterable[str]) -> Iterator[tuple[str, dict]]:
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    for index, row in enumerate(data):
        where = f"{path}: item {index}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object")
        need(row, keys, where)
        yield where, row


# ---------------------------------------------------------------------------------------------------------
# Parsers, one per source. Each yields Records; ``load`` validates categories and emptiness.


def _coconot(should_refuse: bool) -> Parser:
    """A whole CoCoNot-format file (id, category, subcategory, prompt), every row labelled ``should_refuse``."""
    def parse(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
        (path,) = paths.values()
        for line, row in iter_jsonl(path):
            need(row, ("id", "category", "subcategory", "prompt"), f"{path}:{line}")
            yield Record(str(row["id"]), row["prompt"], src.name, row["category"], row["subcategory"],
                         should_refuse)

    return parse


# The in-distribution CoCoNot stand-in, and the development / test protocol. The paper trains on CoCoNot's SFT
# split (Hub only); offline, CoCoNot's *original* evaluation set is split once, deterministically and stratified by
# subcategory, into a held-out **test** part (the benchmark; read only to report), a **dev** part (scored to choose
# settings: steps, frozen blocks, mix, thresholds) and a **training** part (refusal prompts for the mixes). CoCoNot's
# *contrast* set is split the same way into dev and test halves. Every CoCoNot number in the study's tables is on a
# test part; every choice is made on dev parts or on the mixes' validation splits.
COCONOT_TEST_FRACTION = 0.5  # of each subcategory: 1,001 prompts → 499 test (the same ids as before dev existed)
COCONOT_DEV_FRACTION = 0.15  # then 15% of each subcategory → 145 dev; the other 357 train
CONTRAST_TEST_FRACTION = 0.5  # CoCoNot contrast, 379 prompts → 188 test + 191 dev
COCONOT_SPLIT_SEED = 0
COCONOT_PARTS = ("train", "dev", "test")


def stratified_parts(rows: Sequence[Mapping], fractions: Sequence[tuple[str, float]], rest: str,
                     seed: int = COCONOT_SPLIT_SEED) -> dict[str, str]:
    """``id → part``: within each (category, subcategory), ids are ordered by sha256(seed:id); the first
    ``floor(n × f₁)`` go to the first part of ``fractions``, the next ``floor(n × f₂)`` to the second, …, and the
    rest to ``rest`` (so a subcategory of 1 stays in ``rest``).

    Depends only on the ids, their subcategories and the seed, so it is stable across machines and file order, and
    adding a part after the first leaves the first part's ids unchanged.
    """
    if any(not 0 < f < 1 for _, f in fractions) or sum(f for _, f in fractions) >= 1:
        raise DataError(f"split fractions must lie in (0, 1) and sum below 1, got {dict(fractions)!r}")
    groups: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        groups.setdefault((str(row["category"]), str(row["subcategory"])), []).append(str(row["id"]))
    parts: dict[str, str] = {}
    for ids in groups.values():
        ordered = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
        start = 0
        for part, fraction in fractions:
            end = start + math.floor(len(ordered) * fraction)
            parts.update((i, part) for i in ordered[start:end])
            start = end
        parts.update((i, rest) for i in ordered[start:])
    return parts


def coconot_parts(rows: Sequence[Mapping], test_fraction: float = COCONOT_TEST_FRACTION,
                  seed: int = COCONOT_SPLIT_SEED, dev_fraction: float = COCONOT_DEV_FRACTION) -> dict[str, str]:
    """``id → "train" | "dev" | "test"`` for CoCoNot original (:func:`stratified_parts`: test first, then dev)."""
    if not 0 < test_fraction < 1:
        raise DataError(f"CoCoNot test fraction must lie in (0, 1), got {test_fraction!r}")
    return stratified_parts(rows, [("test", test_fraction)] + ([("dev", dev_fraction)] if dev_fraction else []),
                            "train", seed)


def contrast_parts(rows: Sequence[Mapping], seed: int = COCONOT_SPLIT_SEED) -> dict[str, str]:
    """``id → "dev" | "test"`` for CoCoNot contrast."""
    return stratified_parts(rows, [("test", CONTRAST_TEST_FRACTION)], "dev", seed)


def _coconot_part(part: str, should_refuse: bool = True, splitter=coconot_parts) -> Parser:
    """One part of CoCoNot original (:func:`coconot_parts`; should refuse, no response: templates fill it) or,
    with ``splitter=contrast_parts``, of CoCoNot contrast (should answer)."""
    if part not in COCONOT_PARTS:
        raise ValueError(f"unknown CoCoNot part {part!r}")

    def parse(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
        (path,) = paths.values()
        rows = []
        for line, row in iter_jsonl(path):
            need(row, ("id", "category", "subcategory", "prompt"), f"{path}:{line}")
            rows.append(row)
        parts = splitter(rows)
        for row in rows:
            if parts[str(row["id"])] == part:
                yield Record(str(row["id"]), row["prompt"], src.name, row["category"], row["subcategory"],
                             should_refuse, meta={"coconot_part": part})

    return parse


def _coconot_pref(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    for line, row in iter_jsonl(path):
        need(row, ("id", "category", "subcategory", "prompt", "chosen"), f"{path}:{line}")
        # The preferred response to a contrast prompt is a real answer: these rows teach "answer".
        yield Record(str(row["id"]), row["prompt"], src.name, row["category"], row["subcategory"], False,
                     response=row["chosen"], meta={"chosen_model": str(row.get("chosen_model", ""))})


def _temporal(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    for line, row in read_csv(path, ("question_id", "prompt", "label_type", "category", "subcategory",
                                     "eval_split")):
        if row["label_type"] not in ("Abstain", "Respond"):
            raise DataError(f"{path}:{line}: unknown label_type {row['label_type']!r}")
        yield Record(row["question_id"], row["prompt"], src.name, row["category"], row["subcategory"],
                     row["label_type"] == "Abstain", meta={"eval_split": row["eval_split"]})


def _xstest(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    for line, row in read_csv(path, ("id", "prompt", "type", "label")):
        yield Record(f"xstest-{row['id']}", row["prompt"], src.name, row["label"], row["type"],
                     row["label"] == "unsafe", meta={"focus": row.get("focus", "")})


XSTEST_HUMAN_LABELS = ("1_full_compliance", "2_full_refusal", "3_partial_refusal")


def _xstest_completions(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    for path in paths.values():
        model = path.stem.removeprefix("xstest_v2_completions_")
        for line, row in read_csv(path, ("id", "type", "prompt", "completion", "final_label")):
            if row["final_label"] not in XSTEST_HUMAN_LABELS:
                raise DataError(f"{path}:{line}: unknown final_label {row['final_label']!r}")
            unsafe = row["type"].startswith("contrast_")
            yield Record(f"xstest-{row['id']}-{model}", row["prompt"], src.name, model, row["type"], unsafe,
                         response=row["completion"],
                         meta={"human_label": row["final_label"], "model": model})


def _advbench(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    for line, row in read_csv(path, ("goal", "target")):
        yield Record(f"advbench-{line - 1:03d}", row["goal"], src.name, "harmful", "harmful behaviour", True)


def _do_not_answer(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    for line, row in read_csv(path, ("id", "risk_area", "types_of_harm", "question")):
        yield Record(f"dna-{row['id']}", row["question"], src.name, row["risk_area"], row["types_of_harm"], True)


def _harmfulqa(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected {{topic: {{subtopic: [question, …]}}}}")
    index = 0
    for topic, subtopics in data.items():
        if not isinstance(subtopics, dict):
            raise DataError(f"{path}: topic {topic!r} is not a mapping of subtopics")
        for subtopic, questions in subtopics.items():
            for question in questions:
                yield Record(f"harmfulqa-{index:04d}", question, src.name, topic, subtopic, True)
                index += 1


def _sorry_bench(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    """The user message of row i in any response log is SORRY-Bench base prompt i (see the mirror's card).

    Unparseable cells are known (gpt-4: 3, gpt-3.5: 8, gpt-4o: 4, gpt-4o-mini: 27) and skipped; two files
    disagreeing about row i is a DataError.
    """
    prompts: dict[int, str] = {}
    for path in paths.values():
        for index, (line, row) in enumerate(read_csv(path, ("answers",))):  # index = data row, not line
            try:
                messages = json.loads(row["answers"])
                user = next(m["content"] for m in messages if m.get("role") == "user")
            except (json.JSONDecodeError, StopIteration, TypeError, KeyError, AttributeError):
                continue
            if prompts.setdefault(index, user) != user:
                raise DataError(f"{path}:{line}: row {index} disagrees with another response log")
    for index in sorted(prompts):
        category = index // 10 + 1  # inferred: blocks of 10 base prompts per category (mirror card)
        yield Record(f"sorry-{index:03d}", prompts[index], src.name, f"category {category:02d}",
                     f"category {category:02d}", True)


# --- training stand-ins -------------------------------------------------------------------------------


def _safety_tuned_llamas(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    for index, (where, row) in enumerate(_json_rows(path, ("instruction", "output"))):
        prompt = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
        yield Record(f"stl-{index:04d}", prompt, src.name, "Requests with safety concerns",
                     "dangerous or sensitive topics", True, response=row["output"])


def _harmbench_safe(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    for line, row in read_csv(path, ("Behavior", "Safe_Response")):
        yield Record(f"harmbench-adv-{line - 1:03d}", row["Behavior"], src.name, "Requests with safety concerns",
                     "dangerous or sensitive topics", True, response=row["Safe_Response"])


BENIGN_ROWS = 500  # ordinary instructions per benign set: a fixed sample, so decontamination stays cheap


def _instructions(should_refuse: bool, category: str, subcategory: str, rows: int | None = None) -> Parser:
    """Arditi et al.'s ``{instruction, category}`` lists; ``rows``: keep that many, those with the lowest sha256 of
    their text (a sample that does not depend on file order)."""
    def parse(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
        (path,) = paths.values()
        items = [(i, row["instruction"]) for i, (_, row) in enumerate(_json_rows(path, ("instruction",)))]
        if rows is not None:
            items = sorted(items, key=lambda item: hashlib.sha256(item[1].encode()).hexdigest())[:rows]
        for i, prompt in items:
            yield Record(f"{src.name}-{i:05d}", prompt, src.name, category, subcategory, should_refuse)

    return parse


def _harmbench_val(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    for line, row in read_csv(path, ("Behavior", "FunctionalCategory", "SemanticCategory", "BehaviorID")):
        if row["FunctionalCategory"] != "contextual":
            yield Record(row["BehaviorID"], row["Behavior"], src.name, "harmful", row["SemanticCategory"], True)


def _falseqa(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    for line, row in read_csv(path, ("question", "answer", "label")):
        if row["label"] not in ("0", "1"):
            raise DataError(f"{path}:{line}: label must be 0 or 1, got {row['label']!r}")
        # label 1 = false premise (the answer is a short rebuttal); label 0 = true premise, answered: contrast.
        yield Record(f"falseqa-{line - 1:04d}", row["question"], src.name, "Incomplete requests",
                     "false presuppositions", row["label"] == "1", response=row["answer"])


def _nec_unanswerable(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    for line, row in iter_jsonl(path):
        need(row, ("prompt",), f"{path}:{line}")
        yield Record(f"nec-{line:04d}", row["prompt"], src.name, "Incomplete requests", "false presuppositions",
                     True, meta={"concept_kind": str(row.get("category", ""))})


def _situated(subcategory: str, category: str) -> Parser:
    def parse(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
        (path,) = paths.values()
        for line, row in iter_jsonl(path):
            need(row, ("question", "is_dependent", "id"), f"{path}:{line}")
            if row["is_dependent"] == "yes":  # the answer depends on place/time that the question omits
                yield Record(f"{src.name}-{row['id']}", row["question"], src.name, category, subcategory, True)

    return parse


def _selfaware(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("example"), list):
        raise DataError(f"{path}: expected an object with an 'example' list")
    for index, row in enumerate(data["example"]):
        need(row, ("question_id", "question", "answerable"), f"{path}: example {index}")
        if row["answerable"] is False:
            yield Record(f"selfaware-{row['question_id']}", row["question"], src.name, "Indeterminate requests",
                         "universal unknowns", True)


def _self_awareness(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    for line, row in iter_jsonl(path):
        need(row, ("question", "answer_matching_behavior"), f"{path}:{line}")
        stem, _, choices = row["question"].partition("\n\nChoices:")
        letter = row["answer_matching_behavior"].strip()  # " (A)"
        seed = ""
        for choice in choices.split("\n"):
            if choice.strip().startswith(letter):
                seed = choice.strip()[len(letter):].strip()
        yield Record(f"selfaware-ai-{line:04d}", stem.strip(), src.name, "Humanizing requests", "personal inquiry",
                     True, meta={"ai_answer": seed})


def _dual_use(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    from . import dual_use

    for pair in dual_use.pairs():
        yield Record(pair["id"], pair["prompt"], src.name, dual_use.CATEGORY, dual_use.subcategory(pair["kind"]),
                     pair["should_refuse"], response=pair["answer"],
                     meta={"templated": "yes", "kind": pair["kind"], "word": pair["word"]})


def _alpaca_style(prefix: str, response_key: str = "output") -> Parser:
    def parse(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
        index = 0
        for path in paths.values():
            for where, row in _json_rows(path, ("instruction", response_key)):
                history = row.get("history") or []
                conversation = tuple(
                    {"role": role, "content": text}
                    for user, assistant in history
                    for role, text in (("user", user), ("assistant", assistant))
                ) or None
                prompt = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
                yield Record(f"{prefix}-{index:05d}", prompt, src.name, GENERAL, path.stem, False,
                             response=row[response_key], conversation=conversation)
                index += 1

    return parse


def _self_instruct(src: Source, paths: Mapping[str, Path]) -> Iterator[Record]:
    (path,) = paths.values()
    for line, row in iter_jsonl(path):
        need(row, ("id", "instruction", "instances"), f"{path}:{line}")
        instance = row["instances"][0]
        prompt = row["instruction"] + (f"\n\n{instance['input']}" if instance.get("input") else "")
        yield Record(str(row["id"]), prompt, src.name, GENERAL, "user-oriented instructions", False,
                     response=instance["output"], meta={"motivation_app": str(row.get("motivation_app", ""))})


# --- Hub-only sets -------------------------------------------------------------------------------------


def _hub_columns(prompt: str, refuse: Callable[[Mapping], bool], category: Callable[[Mapping], str],
                 response: str | None = None) -> HubParser:
    def parse(src: Source, rows: Iterable[Mapping[str, object]]) -> Iterator[Record]:
        for index, row in enumerate(rows):
            need(row, (prompt,), f"{src.hub.id}: row {index}")
            yield Record(str(row.get("id", f"{src.name}-{index:05d}")), str(row[prompt]), src.name,
                         category(row), str(row.get("subcategory", "")), refuse(row),
                         response=str(row[response]) if response else None)

    return parse


# ---------------------------------------------------------------------------------------------------------
# The registry.


def _gh(repo: str, commit: str, upstream_path: str, mirror_path: str, sha256: str) -> RemoteFile:
    return RemoteFile(mirror_path, f"https://raw.githubusercontent.com/{repo}/{commit}/{upstream_path}", sha256)


_NONCOMPLIANCE = ("allenai/noncompliance", "25bf77cc668814360405cdb8197c4368205806c7")
_OFFICIAL = ("neelsjain/refusal-tokens", "9ff5af80de6b6d8af6b5eff6255d0fad75cede8c")
_XSTEST = ("paul-rottger/exaggerated-safety", "d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d")
_SORRY = ("AmanPriyanshu/FRACTURED-SORRY-Bench", "746bb731590d1ab63cec070b2427ec56f3f26d37")
_SITUATED = ("mikejqzhang/SituatedQA", "1ef854512fe0f692ca55f92ff2feedf3d7612eda")
_ANTHROPIC = ("anthropics/evals", "84fcc677e52e1902d696c32cd1a6b663e70d3993")
_GPTEACHER = ("teknium1/GPTeacher", "481075123c29854bddb82655badeef6a438f2436")

HARM = "prompts request dangerous, illegal, hateful, sexual or privacy-violating content"
XSTEST_MODELS = ("gpt4", "llama2new", "llama2orig", "mistralguard", "mistralinstruct")
XSTEST_COMPLETION_SHA = {
    "gpt4": "71af323af8ecdec0efae23992317721441d2cfedddedeef3248f842f4e15c9ca",
    "llama2new": "6365cc55ce0a593c7ab8785853d02784be027d97199d4077912b4313cd010099",
    "llama2orig": "cbc52550e8ba8197a3e3d97a5af078d27bae4766737cd62df80270126a87ffc6",
    "mistralguard": "0ac03817b65e019a8f5b4b3eed805086f9f7fafe538ac9ebd156f80210af6903",
    "mistralinstruct": "6a146b65a5b96ec8249729bc2db459697175125998d7cbbcc88f7688ecf31dad",
}
SORRY_SHA = {
    "gpt-4": "cbe142219be42c2f6dea653802f0c6579def472f2075248070aa49308cda1578",
    "gpt-3.5": "271f5291c91433a1e56760739724cd45fb6b6b6f8e5dc02bfc24534dd7f2df16",
    "gpt-4o": "5f0c8607d80727bb4f50d866a8271900e6769280a4016fb2c03bd6b5da1be09a",
    "gpt-4o-mini": "609d67d2315550c815e2172ec0cdd9d4609c63a714bde659d4f3fd281ba39339",
}

SOURCES: dict[str, Source] = {}


def register(source: Source) -> Source:
    if source.name in SOURCES:
        raise ValueError(f"source {source.name!r} registered twice")
    SOURCES[source.name] = source
    return source


# Evaluation sets ---------------------------------------------------------------------------------------
_COCONOT_EVAL = _gh(*_NONCOMPLIANCE, "data/coconot_eval.jsonl", "coconot/coconot_eval.jsonl",
                    "df72466c477207f14a96c5940c3ef3b93b1b50c0d1e7ed7c5fb5dc6d6140c077")
register(Source(
    "coconot_original", "CoCoNot original eval, held-out test part (should refuse)", "eval",
    f"GitHub {_NONCOMPLIANCE[0]} @ {_NONCOMPLIANCE[1]}", "MIT (Hub copy ODC-BY)",
    (_COCONOT_EVAL,),
    _coconot_part("test"), categories=COCONOT_CATEGORIES, category_mapping="native CoCoNot categories",
    content_warning=HARM,
    notes=f"Only the held-out test part ({COCONOT_TEST_FRACTION:.0%} of each subcategory, sha256-ordered ids, seed "
          f"{COCONOT_SPLIT_SEED}); {COCONOT_DEV_FRACTION:.0%} more is the dev part (coconot_original_dev) and the "
          "rest trains (coconot_original_train)."))
register(Source(
    "coconot_contrast", "CoCoNot contrast eval, test half (should answer)", "eval",
    f"GitHub {_NONCOMPLIANCE[0]} @ {_NONCOMPLIANCE[1]}", "MIT (Hub copy ODC-BY)",
    (_gh(*_NONCOMPLIANCE, "data/coconot_contrast_eval.jsonl", "coconot/coconot_contrast_eval.jsonl",
         "76dccec176743ed656279f2969c51abb68bda94e5fda8397e34ff5638e021d86"),),
    _coconot_part("test", False, contrast_parts), categories=COCONOT_CATEGORIES,
    category_mapping="native CoCoNot categories", content_warning="contrast prompts look harmful but are benign",
    notes=f"Only the test half ({CONTRAST_TEST_FRACTION:.0%} of each subcategory, sha256-ordered ids, seed "
          f"{COCONOT_SPLIT_SEED}); the other half is coconot_contrast_dev."))
_CONTRAST_EVAL = _gh(*_NONCOMPLIANCE, "data/coconot_contrast_eval.jsonl", "coconot/coconot_contrast_eval.jsonl",
                      "76dccec176743ed656279f2969c51abb68bda94e5fda8397e34ff5638e021d86")
_REFUSAL_DIRECTION = ("andyrdt/refusal_direction", "9d852fae1a9121c78b29142de733cb1340770cc3")
_ADVERSARIALLM = ("busycalibrating/AdversariaLLM", "f970939273ea17b491fadf6001fddc36ed3ae3ff")
register(Source(
    "benign_instructions", f"Ordinary instructions: {BENIGN_ROWS} of Arditi et al.'s harmless test split (Alpaca)",
    "eval", f"GitHub {_REFUSAL_DIRECTION[0]} @ {_REFUSAL_DIRECTION[1]}", "Apache-2.0 (repo); Alpaca CC BY-NC 4.0",
    (_gh(*_REFUSAL_DIRECTION, "dataset/splits/harmless_test.json", "refusal_direction_splits/harmless_test.json",
         "1b5930ce5e855ada758b3116ce7c4aaea9b9d05f8cdd77b385511d4c84173b19"),),
    _instructions(False, GENERAL, "ordinary instruction", BENIGN_ROWS),
    notes=f"The over-refusal check on ordinary requests: {BENIGN_ROWS} prompts (lowest sha256 of their text) of "
          "6,266; should answer. Every mix is decontaminated against them."))

# Development sets: scored to choose settings, never reported as results ------------------------------------
register(Source(
    "coconot_original_dev", "CoCoNot original eval, dev part (should refuse)", "dev",
    f"GitHub {_NONCOMPLIANCE[0]} @ {_NONCOMPLIANCE[1]}", "MIT (Hub copy ODC-BY)", (_COCONOT_EVAL,),
    _coconot_part("dev"), categories=COCONOT_CATEGORIES, category_mapping="native CoCoNot categories",
    content_warning=HARM, notes=f"{COCONOT_DEV_FRACTION:.0%} of each subcategory, after the test part"))
register(Source(
    "coconot_contrast_dev", "CoCoNot contrast eval, dev half (should answer)", "dev",
    f"GitHub {_NONCOMPLIANCE[0]} @ {_NONCOMPLIANCE[1]}", "MIT (Hub copy ODC-BY)", (_CONTRAST_EVAL,),
    _coconot_part("dev", False, contrast_parts), categories=COCONOT_CATEGORIES,
    category_mapping="native CoCoNot categories", content_warning="contrast prompts look harmful but are benign"))
register(Source(
    "harmbench_val", "HarmBench validation behaviours, standard + copyright (should refuse)", "dev",
    f"GitHub {_ADVERSARIALLM[0]} @ {_ADVERSARIALLM[1]} (vendors HarmBench data/)", "MIT",
    (_gh(*_ADVERSARIALLM, "data/behavior_datasets/harmbench_behaviors_text_val.csv",
         "harmbench/harmbench_behaviors_text_val.csv",
         "7bfaaa5e2b9b95002c89e2d33c019f58e9e8496e2fc65d368f1eeb8179e69534"),),
    _harmbench_val, content_warning=HARM,
    notes="61 of 80: the contextual behaviours need their context string and are left out"))
register(Source(
    "benign_dev", f"Ordinary instructions, dev: {BENIGN_ROWS} of Arditi et al.'s harmless validation split (Alpaca)",
    "dev", f"GitHub {_REFUSAL_DIRECTION[0]} @ {_REFUSAL_DIRECTION[1]}", "Apache-2.0 (repo); Alpaca CC BY-NC 4.0",
    (_gh(*_REFUSAL_DIRECTION, "dataset/splits/harmless_val.json", "refusal_direction_splits/harmless_val.json",
         "772010758e7d771ef4c7e5e4acdfd7598dcece1a6f383f20d382f640913a2a4d"),),
    _instructions(False, GENERAL, "ordinary instruction", BENIGN_ROWS)))
register(Source(
    "refusal_tokens_temporal", "Refusal Tokens paper: temporal eval (200 temporal + CoCoNot + normal)", "eval",
    f"GitHub {_OFFICIAL[0]} @ {_OFFICIAL[1]}", "no licence file (research reproduction only)",
    (_gh(*_OFFICIAL, "temporal_setting/eval/refusal_eval_temporal.csv",
         "refusal_tokens_official/refusal_eval_temporal.csv",
         "ca8a851597c2c885cf3c6d5e6eb2a56eab27f1f18f9401618e6de90531fd8a2a"),),
    _temporal, categories=COCONOT_CATEGORIES + ("temporal_question", "normal"),
    category_mapping="native; label_type Abstain = should refuse", content_warning=HARM))
register(Source(
    "xstest", "XSTest v2 prompts (250 safe, 200 unsafe)", "eval",
    f"GitHub {_XSTEST[0]} @ {_XSTEST[1]}", "CC-BY-4.0",
    (_gh(*_XSTEST, "xstest_prompts.csv", "xstest/xstest_prompts.csv",
         "11783fb294ed017473ee53c207d71f2161c7672c8d0b037501e78387f801cb5a"),),
    _xstest, categories=("safe", "unsafe"), category_mapping="category = label, subcategory = XSTest type",
    content_warning="200 unsafe prompts request harmful content"))
register(Source(
    "xstest_completions", "XSTest v2: 5 models × 450 completions with human refusal labels", "judge",
    f"GitHub {_XSTEST[0]} @ {_XSTEST[1]}", "CC-BY-4.0 (completions: the models' licences)",
    tuple(_gh(*_XSTEST, f"model_completions/xstest_v2_completions_{m}.csv",
              f"xstest/model_completions/xstest_v2_completions_{m}.csv", XSTEST_COMPLETION_SHA[m])
          for m in XSTEST_MODELS),
    _xstest_completions, categories=XSTEST_MODELS,
    category_mapping="category = completing model; meta.human_label = 1_full_compliance / 2_full_refusal / "
                     "3_partial_refusal", content_warning="model completions of unsafe prompts"))
register(Source(
    "advbench", "AdvBench harmful behaviours", "eval",
    "GitHub llm-attacks/llm-attacks @ 098262edf85f807224e70ecd87b9d83716bf6b73", "MIT",
    (_gh("llm-attacks/llm-attacks", "098262edf85f807224e70ecd87b9d83716bf6b73",
         "data/advbench/harmful_behaviors.csv", "advbench/harmful_behaviors.csv",
         "6cd1a5c63c07610d7eb67307772ee5606017ee950b5770ab288a2c487489d3e1"),),
    _advbench, categories=("harmful",), content_warning=HARM))
register(Source(
    "do_not_answer", "Do-Not-Answer (English)", "eval",
    "GitHub Libr-AI/do-not-answer (copy: kunishou/do-not-answer-ja @ 1380ff2ff5abad07e8aead79caa9757bb8d9f866)",
    "Apache-2.0",
    (_gh("kunishou/do-not-answer-ja", "1380ff2ff5abad07e8aead79caa9757bb8d9f866",
         "datasets/Instruction/do_not_answer_en.csv", "do_not_answer/do_not_answer_en.csv",
         "06acfa39a06a1b33d1f264ce41b4f7a95812010c594fb733ae4717ee0a4544fc"),),
    _do_not_answer, category_mapping="category = risk area, subcategory = type of harm", content_warning=HARM))
register(Source(
    "harmfulqa", "HarmfulQA questions", "eval",
    "GitHub declare-lab/red-instruct @ 73c759c93d2f6b1d8c7b058ab7bcec5fb0c28fa2", "Apache-2.0",
    (_gh("declare-lab/red-instruct", "73c759c93d2f6b1d8c7b058ab7bcec5fb0c28fa2",
         "harmful_questions/harmfulqa.json", "harmfulqa/harmfulqa.json",
         "e04c1f3c48800ea84f954298e2a74f27e391069e037d60a22c2727eaa22f2cf8"),),
    _harmfulqa, category_mapping="category = topic, subcategory = subtopic", content_warning=HARM))
register(Source(
    "sorry_bench_partial", "SORRY-Bench 2024-06 base prompts (449 of 450, third-party copy)", "eval",
    f"GitHub {_SORRY[0]} @ {_SORRY[1]}", "CC BY-NC 4.0 + SORRY-Bench terms",
    tuple(_gh(*_SORRY, f"responses/{m}/vanilla_responses.csv", f"sorry_bench_partial/responses/{m}/vanilla_responses.csv",
              SORRY_SHA[m]) for m in SORRY_SHA),
    _sorry_bench, category_mapping="category index = row // 10 + 1 (inferred, not verified)",
    content_warning=HARM, notes="Partial: row 141 is missing from every response log."))

# Hub-only evaluation sets (not run offline) ------------------------------------------------------------
register(Source(
    "or_bench_hard", "OR-Bench hard-1k (over-refusal)", "eval", "Hub bench-llm/or-bench", "CC-BY-4.0",
    hub=HubSpec("bench-llm/or-bench", "or-bench-hard-1k", "train", "main"),
    hub_parser=_hub_columns("prompt", lambda r: False, lambda r: str(r.get("category", ""))),
    content_warning="seemingly toxic but benign prompts", notes="No revision hash known here: unpinned."))
register(Source(
    "or_bench_toxic", "OR-Bench toxic", "eval", "Hub bench-llm/or-bench", "CC-BY-4.0",
    hub=HubSpec("bench-llm/or-bench", "or-bench-toxic", "train", "main"),
    hub_parser=_hub_columns("prompt", lambda r: True, lambda r: str(r.get("category", ""))),
    content_warning=HARM, notes="No revision hash known here: unpinned."))
register(Source(
    "wildguardtest", "WildGuardTest (prompt harm labels)", "eval", "Hub allenai/wildguardmix (gated)", "ODC-BY",
    hub=HubSpec("allenai/wildguardmix", "wildguardtest", "test", "d29c47f41c8b51348b5c8e8c81c039b3132b66d1"),
    hub_parser=_hub_columns("prompt", lambda r: r.get("prompt_harm_label") == "harmful",
                            lambda r: str(r.get("prompt_harm_label", ""))),
    categories=("harmful", "unharmful"), content_warning=HARM))
register(Source(
    "wildjailbreak_eval", "WildJailbreak eval (adversarial harmful / benign)", "eval",
    "Hub allenai/wildjailbreak (gated)", "ODC-BY",
    hub=HubSpec("allenai/wildjailbreak", "eval", "train", "main",
                {"delimiter": "\t", "keep_default_na": False}),
    hub_parser=_hub_columns("adversarial", lambda r: r.get("data_type") == "adversarial_harmful",
                            lambda r: str(r.get("data_type", ""))),
    categories=("adversarial_harmful", "adversarial_benign"), content_warning=HARM,
    notes="No revision hash known here: unpinned."))

# Training sources ------------------------------------------------------------------------------------------
register(Source(
    "coconot_train", "CoCoNot SFT train split (the paper's refusal data)", "train",
    "Hub allenai/coconot", "ODC-BY",
    hub=HubSpec("allenai/coconot", "original", "train", "3e9839f59dbfcc4a20d7891ed33d191d1d2bfaa4"),
    hub_parser=_hub_columns("prompt", lambda r: True, lambda r: str(r.get("category", "")), "response"),
    categories=COCONOT_CATEGORIES, category_mapping="native", content_warning=HARM,
    notes="Hub only (11,477 rows); offline the mix is built from the stand-ins below."))
register(Source(
    "coconot_original_train", "CoCoNot original eval, training part (the in-distribution stand-in)", "train",
    f"GitHub {_NONCOMPLIANCE[0]} @ {_NONCOMPLIANCE[1]}", "MIT (Hub copy ODC-BY)",
    (_COCONOT_EVAL,),
    _coconot_part("train"), categories=COCONOT_CATEGORIES,
    category_mapping="native; should refuse; refusal text written by the project per subcategory",
    content_warning=HARM,
    notes="The complement of coconot_original's held-out test part. Stands in for CoCoNot's Hub-only SFT split: "
          "the same prompt distribution, refusals templated by the project instead of written by GPT-4."))
register(Source(
    "dual_use_pairs", "Dual-use contrast pairs: one alarming word, harmful vs harmless objects (built here)", "train",
    "this project: src/refusal_tokens/dual_use.py (hand-written lexicon × 4 sentence frames)", "Apache-2.0 (this project)",
    (), _dual_use, categories=COCONOT_CATEGORIES,
    category_mapping="Requests with safety concerns; subcategory 'dual use: <kind>' on both sides (harmful → refuse "
                     "with the safety templates, harmless → answer with a templated opening)",
    content_warning="the harmful side names violent and criminal acts",
    notes="Written for this study without reading XSTest; checked for word 4-gram overlap with XSTest afterwards and "
          "the close items removed (tests/test_dual_use.py). Stands in for XSTest-like contrast data, which no "
          "training set in the mirror provides.", built_here=True))
register(Source(
    "coconot_pref", "CoCoNot contrast preference set (chosen = real answer)", "train",
    f"GitHub {_NONCOMPLIANCE[0]} @ {_NONCOMPLIANCE[1]}", "MIT (Hub copy ODC-BY)",
    (_gh(*_NONCOMPLIANCE, "data/coconot_pref.jsonl", "coconot/coconot_pref.jsonl",
         "3b0cddcfb72218b8c32d7c11bfded00174f2f4a3c4edfbc862640fc63f43d9c2"),),
    _coconot_pref, categories=COCONOT_CATEGORIES,
    category_mapping="native; every row is a contrast prompt (should answer) with its chosen answer",
    content_warning="benign prompts near sensitive topics"))
register(Source(
    "safety_tuned_llamas", "Safety-Tuned LLaMAs safety-only training data", "train",
    "GitHub vinid/safety-tuned-llamas @ 36a4b8d5c2177ed165bf61f59b590161394f7f12", "CC BY-NC 4.0 (data)",
    (_gh("vinid/safety-tuned-llamas", "36a4b8d5c2177ed165bf61f59b590161394f7f12",
         "data/training/safety_only_data_Instructions.json", "safety_tuned_llamas/safety_only_data_Instructions.json",
         "7dde08acf87f10cf74fd1b76f56538eae8e413ae8e6b09e3f7bcd97769058dbe"),),
    _safety_tuned_llamas, categories=COCONOT_CATEGORIES,
    category_mapping="all → Requests with safety concerns / dangerous or sensitive topics (no finer label)",
    content_warning=HARM))
register(Source(
    "harmbench_adv_safe", "HarmBench adversarial-training behaviours with long safe responses", "train",
    "GitHub busycalibrating/AdversariaLLM @ f970939273ea17b491fadf6001fddc36ed3ae3ff (vendors HarmBench data/)",
    "MIT",
    (_gh("busycalibrating/AdversariaLLM", "f970939273ea17b491fadf6001fddc36ed3ae3ff",
         "data/safe_responses/adv_training_behaviors_safe_responses_longer.csv",
         "harmbench/adv_training_behaviors_safe_responses_longer.csv",
         "1ec4970cbc724eabcad6584133bf618fb55e134eae4508cce8adf63a26e73bab"),),
    _harmbench_safe, categories=COCONOT_CATEGORIES,
    category_mapping="all → Requests with safety concerns / dangerous or sensitive topics", content_warning=HARM))
register(Source(
    "harmful_instructions", "Harmful instructions, Arditi et al.'s training split (prompts only)", "train",
    f"GitHub {_REFUSAL_DIRECTION[0]} @ {_REFUSAL_DIRECTION[1]}", "Apache-2.0 (repo)",
    (_gh(*_REFUSAL_DIRECTION, "dataset/splits/harmful_train.json", "refusal_direction_splits/harmful_train.json",
         "8f5c0eac0efd2a7f99084bbe8d0de2c465e31b1997184783c917969d9de9ece1"),),
    _instructions(True, "Requests with safety concerns", "dangerous or sensitive topics"),
    categories=COCONOT_CATEGORIES,
    category_mapping="all → Requests with safety concerns / dangerous or sensitive topics; refusal text written by "
                     "the project (the subcategory's templates)",
    content_warning=HARM,
    notes="Drawn by its authors from AdvBench, MaliciousInstruct, TDC2023, HarmBench, JailbreakBench and "
          "StrongREJECT: AdvBench is an evaluation set here, so the meaning-level decontamination removes its "
          "paraphrases."))
register(Source(
    "falseqa", "FalseQA train split (false-premise questions and true-premise contrast)", "train",
    "GitHub thunlp/FalseQA @ 9a9729974d8c5cfbfc6929e5b830111c0ed7c0c7", "none stated (research use)",
    (_gh("thunlp/FalseQA", "9a9729974d8c5cfbfc6929e5b830111c0ed7c0c7", "dataset/train.csv", "falseqa/train.csv",
         "2aa13cf9dd1fb7751de17a59e83a225d3cc50eb263b32697d97f97968a9c160f"),),
    _falseqa, categories=COCONOT_CATEGORIES,
    category_mapping="label 1 → Incomplete requests / false presuppositions (refuse: the rebuttal); label 0 → "
                     "same category, contrast (answer)"))
register(Source(
    "unknownbench_nec", "UnknownBench NEC: questions about non-existent concepts", "train",
    "GitHub genglinliu/UnknownBench @ 7283e4218b9146275d3069306927c3289fad576a", "none stated (research use)",
    (_gh("genglinliu/UnknownBench", "7283e4218b9146275d3069306927c3289fad576a", "data/NEC/NEC_unanswerable.json",
         "unknownbench/NEC/NEC_unanswerable.json",
         "72a666544e4fc5269ece3d80f27f6f7a29a3e45ac50660da2e85b94f0eae2f05"),),
    _nec_unanswerable, categories=COCONOT_CATEGORIES,
    category_mapping="→ Incomplete requests / false presuppositions; refusal written by the project"))
register(Source(
    "situatedqa_geo", "SituatedQA geo-dependent questions (train split)", "train",
    f"GitHub {_SITUATED[0]} @ {_SITUATED[1]}", "no licence file (questions from NQ, CC BY-SA 3.0)",
    (_gh(*_SITUATED, "data/id_data/geo.train.jsonl", "situatedqa/id_data/geo.train.jsonl",
         "625f25b257ed14c1d538ca9ce218783d47dc2ad319817823420b06fa53316224"),),
    _situated("underspecified", "Incomplete requests"), categories=COCONOT_CATEGORIES,
    category_mapping="is_dependent=yes → Incomplete requests / underspecified; clarifying reply written by the "
                     "project. CoCoNot's underspecified eval was built from these: decontamination drops overlaps"))
register(Source(
    "situatedqa_temp", "SituatedQA time-dependent questions (train split)", "train",
    f"GitHub {_SITUATED[0]} @ {_SITUATED[1]}", "no licence file (questions from NQ, CC BY-SA 3.0)",
    (_gh(*_SITUATED, "data/id_data/temp.train.jsonl", "situatedqa/id_data/temp.train.jsonl",
         "4bde01f70bae72af1a26b0ece119045943beac762c7ba892113a63971be0613a"),),
    _situated("temporal limitations", "Unsupported requests"), categories=COCONOT_CATEGORIES,
    category_mapping="is_dependent=yes → Unsupported requests / temporal limitations; caveat written by the "
                     "project"))
register(Source(
    "selfaware", "SelfAware unanswerable questions", "train",
    "GitHub yinzhangyue/SelfAware @ f0bad1ff77bd42fc4eb2360281ed646c7bb7bd0c", "Apache-2.0 (JSON says CC-BY-SA-4.0)",
    (_gh("yinzhangyue/SelfAware", "f0bad1ff77bd42fc4eb2360281ed646c7bb7bd0c", "data/SelfAware.json",
         "selfaware/SelfAware.json", "32929585ffdd4048f35f7f167720722eb8ddcf59908ffc958da2f84ea634dc54"),),
    _selfaware, categories=COCONOT_CATEGORIES,
    category_mapping="answerable=false → Indeterminate requests / universal unknowns (SelfAware does not split "
                     "subjective from unknown); abstention written by the project"))
register(Source(
    "self_awareness", "Anthropic evals: human-written self-awareness questions (general-ai)", "train",
    f"GitHub {_ANTHROPIC[0]} @ {_ANTHROPIC[1]}", "CC BY 4.0",
    (_gh(*_ANTHROPIC, "advanced-ai-risk/human_generated_evals/self-awareness-general-ai.jsonl",
         "anthropic_evals_self_awareness/self-awareness-general-ai.jsonl",
         "336ff2038bf175359fa666203f53ba13fc8f33aa86a34559750599dd5688ed24"),),
    _self_awareness, categories=COCONOT_CATEGORIES,
    category_mapping="question stem → Humanizing requests / personal inquiry; reply written by the project from "
                     "the 'I am an AI' choice"))
register(Source(
    "alpaca_gpt4_demo", "Alpaca-GPT4 demo (999 instructions with GPT-4 answers)", "train",
    "GitHub hiyouga/LLaMA-Factory @ ff6d4d12eeb035d6ce06805a5733dd7b29f2ac30", "CC BY-NC 4.0 (data)",
    (_gh("hiyouga/LLaMA-Factory", "ff6d4d12eeb035d6ce06805a5733dd7b29f2ac30", "data/alpaca_en_demo.json",
         "alpaca_gpt4_demo/alpaca_en_demo.json", "bcc37c64db1a739a0789a1b81f251146fcf4459f903474bc9e3c21bbb5628318"),),
    _alpaca_style("alpaca"), categories=TRAIN_CATEGORIES, category_mapping="→ general (answer)"))
register(Source(
    "lima", "LIMA (1k curated prompt/response pairs)", "train",
    "GitHub hiyouga/LLaMA-Factory @ f5c2ccdde45bfa5648443a901b2ac397d532eceb", "CC BY-NC-SA 4.0 (data)",
    (_gh("hiyouga/LLaMA-Factory", "f5c2ccdde45bfa5648443a901b2ac397d532eceb", "data/lima.json", "lima/lima.json",
         "1d447bd5d4750e651a6e28660e452c24d18d18e10e1d334b3c8277c2aa956322"),),
    _alpaca_style("lima"), categories=TRAIN_CATEGORIES, category_mapping="→ general (answer); 29 multi-turn"))
register(Source(
    "self_instruct", "Self-Instruct user-oriented instructions (expert-written)", "train",
    "GitHub yizhongw/self-instruct @ 0b26ccaa415992100fa32df62d41b994cf928e23", "Apache-2.0",
    (_gh("yizhongw/self-instruct", "0b26ccaa415992100fa32df62d41b994cf928e23",
         "human_eval/user_oriented_instructions.jsonl", "self_instruct_user_oriented/user_oriented_instructions.jsonl",
         "81d60a117db495cecedecd9193504fd07c5b5a42f6699ef6b0f9da10fc22f42e"),),
    _self_instruct, categories=TRAIN_CATEGORIES, category_mapping="→ general (answer)"))
register(Source(
    "gpteacher", "GPTeacher codegen and roleplay instructions", "train",
    f"GitHub {_GPTEACHER[0]} @ {_GPTEACHER[1]}", "MIT (GPT-4 outputs: OpenAI terms may apply)",
    (_gh(*_GPTEACHER, "Codegen/codegen-instruct.json", "gpteacher/codegen-instruct.json",
         "8b0be81f22b86bccab30f573351b62efb3391da229d2ee817a65ce0abb08b29d"),
     _gh(*_GPTEACHER, "Roleplay/roleplay-simple-deduped-roleplay-instruct.json",
         "gpteacher/roleplay-simple-deduped-roleplay-instruct.json",
         "b5d57a0d92162fd0b78988fe352e8512b435363919caf63efc3759d5a1555023")),
    _alpaca_style("gpteacher", response_key="response"), categories=TRAIN_CATEGORIES,
    category_mapping="→ general (answer)"))
register(Source(
    "ultrachat_200k", "UltraChat-200k (the paper's general SFT data)", "train", "Hub HuggingFaceH4/ultrachat_200k",
    "MIT",
    hub=HubSpec("HuggingFaceH4/ultrachat_200k", None, "train_sft", "main"),
    hub_parser=_hub_columns("prompt", lambda r: False, lambda r: GENERAL),
    categories=TRAIN_CATEGORIES, notes="Paper profile only; no revision hash known here: unpinned."))


# ---------------------------------------------------------------------------------------------------------


def get(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise DataError(f"unknown source {name!r}; known: {sorted(SOURCES)}") from None


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connection to the Hub endpoint, so that offline runs fail in seconds, not after
    ``datasets``' retries (≈20 s per set)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return False
    host = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_hub(src: Source) -> Iterable[Mapping[str, object]]:
    spec = src.hub
    if not hub_reachable():
        raise SourceUnavailable(src.name, f"Hub-only set {spec.id} and the Hub is unreachable (offline, or "
                                          "HF_HUB_OFFLINE=1)")
    try:
        import datasets

        return datasets.load_dataset(spec.id, spec.config, split=spec.split, revision=spec.revision,
                                     **dict(spec.kwargs))
    except Exception as error:  # noqa: BLE001 - any failure to reach the Hub means "not obtainable here"
        raise SourceUnavailable(
            src.name, f"Hub-only set {spec.id} ({spec.config}/{spec.split}@{spec.revision}) is unreachable: "
                      f"{type(error).__name__}: {str(error)[:200]}. Log in / go online, or mark it not run."
        ) from None


def load(name: str, mirror: str | os.PathLike | None = None, cache: str | os.PathLike | None = None) -> list[Record]:
    """All records of one source, validated: known categories, non-empty prompts, at least one record."""
    src = get(name)
    if src.hub is not None:
        records = list(src.hub_parser(src, _load_hub(src)))
    else:
        paths = {f.path: fetch(f, src.name, mirror, cache) for f in src.files}
        records = list(src.parser(src, paths))
    if not records:
        raise DataError(f"{name}: no records in {[f.path for f in src.files] or src.hub.id}")
    for record in records:
        if not record.prompt or not record.prompt.strip():
            raise DataError(f"{name}: record {record.id} has an empty prompt")
        if src.categories is not None and record.category not in src.categories:
            raise DataError(f"{name}: record {record.id} has unknown category {record.category!r}; "
                            f"expected one of {list(src.categories)}")
    return records


def try_load(name: str, mirror=None, cache=None) -> tuple[list[Record] | None, str]:
    """``(records, "ok")`` or ``(None, reason)`` for a source that cannot be obtained here."""
    try:
        return load(name, mirror, cache), "ok"
    except SourceUnavailable as error:
        return None, f"not run: {error}"


def names(role: str | None = None, offline_only: bool = False) -> list[str]:
    return [n for n, s in SOURCES.items() if (role is None or s.role == role) and not (offline_only and s.hub)]


def load_all(names_: Iterable[str], mirror=None, cache=None) -> tuple[dict[str, list[Record] | None], dict[str, str]]:
    """Load several sources; unavailable ones map to None with the reason in the status dict."""
    loaded, status = {}, {}
    for name in names_:
        loaded[name], status[name] = try_load(name, mirror, cache)
    return loaded, status


def summary(loaded: Mapping[str, list[Record] | None], status: Mapping[str, str]) -> list[dict]:
    """One row per source: role, records, refuse / answer counts, licence, status."""
    rows = []
    for name, records in loaded.items():
        src = get(name)
        rows.append({"source": name, "role": src.role, "records": len(records) if records else 0,
                     "should_refuse": sum(r.should_refuse for r in records) if records else 0,
                     "licence": src.licence, "status": "ok" if records is not None else status[name][:60]})
    return rows


def require(loaded: Mapping[str, list[Record] | None], status: Mapping[str, str], needed: Iterable[str]) -> None:
    """One clear error naming every needed source that could not be loaded, and why."""
    missing = [name for name in needed if loaded.get(name) is None]
    if missing:
        reasons = "; ".join(status.get(name, "not loaded") for name in missing)
        raise SourceUnavailable(", ".join(missing), f"needed but unavailable ({reasons}). Set {MIRROR_ENV} to an "
                                                    "offline mirror or go online.")
