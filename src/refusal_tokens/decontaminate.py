"""Decontamination: no training prompt may match an evaluation prompt.

Three match levels, checked in order; a prompt is counted under the first level that hits:

- ``exact``: identical after stripping outer whitespace;
- ``normalised``: identical after :func:`normalise` (Unicode NFKC, lowercase, punctuation removed, whitespace
  collapsed);
- ``fuzzy``: word-set Jaccard similarity ≥ ``threshold`` (default 0.8, the mirror's own check) between the
  normalised word sets, found with a prefix filter so it stays fast (two sets with J ≥ t must share one of
  the first ``|A| - ceil(t·|A|) + 1`` rarest words of A).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .sources import Record

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
LEVELS = ("exact", "normalised", "fuzzy")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_NON_WORD.sub(" ", text).split())


def words(text: str) -> frozenset[str]:
    return frozenset(normalise(text).split())


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class EvalIndex:
    """Every evaluation prompt, indexed for the three match levels."""

    threshold: float = 0.8

    def __post_init__(self) -> None:
        self.exact: dict[str, str] = {}
        self.normalised: dict[str, str] = {}
        self.sets: list[tuple[frozenset[str], str]] = []
        self.postings: dict[str, list[int]] = defaultdict(list)
        self.frequency: Counter[str] = Counter()

    @classmethod
    def build(cls, eval_sets: dict[str, Sequence[Record]], threshold: float = 0.8) -> "EvalIndex":
        index = cls(threshold)
        for name, records in eval_sets.items():
            for record in records:
                index.add(record.prompt, name)
        index._finish()
        return index

    def add(self, prompt: str, source: str) -> None:
        self.exact.setdefault(prompt.strip(), source)
        self.normalised.setdefault(normalise(prompt), source)
        self.sets.append((words(prompt), source))

    def _finish(self) -> None:
        for word_set, _ in self.sets:
            self.frequency.update(word_set)
        for i, (word_set, _) in enumerate(self.sets):
            for word in self._prefix(word_set):
                self.postings[word].append(i)

    def _prefix(self, word_set: frozenset[str]) -> list[str]:
        ordered = sorted(word_set, key=lambda w: (self.frequency.get(w, 0), w))
        keep = len(ordered) - math.ceil(self.threshold * len(ordered)) + 1
        return ordered[:max(keep, 1)]

    def match(self, prompt: str) -> tuple[str, str] | None:
        """``(level, eval source)`` of the first match, or None."""
        if prompt.strip() in self.exact:
            return "exact", self.exact[prompt.strip()]
        key = normalise(prompt)
        if key in self.normalised:
            return "normalised", self.normalised[key]
        word_set = words(prompt)
        if not word_set:
            return None
        seen: set[int] = set()
        for word in self._prefix(word_set):
            for i in self.postings.get(word, ()):
                if i in seen:
                    continue
                seen.add(i)
                other, source = self.sets[i]
                if jaccard(word_set, other) >= self.threshold:
                    return "fuzzy", source
        return None


def decontaminate(records: Iterable[Record], index: EvalIndex) -> tuple[list[Record], dict[str, dict[str, int]]]:
    """Drop every record whose prompt (or any earlier turn's user message) matches an eval prompt.

    Returns the kept records and, per training source, ``{candidates, exact, normalised, fuzzy, kept}``.
    """
    kept: list[Record] = []
    report: dict[str, dict[str, int]] = {}
    for record in records:
        row = report.setdefault(record.source, {"candidates": 0, **{level: 0 for level in LEVELS}, "kept": 0})
        row["candidates"] += 1
        texts = [record.prompt] + [t["content"] for t in record.conversation or () if t.get("role") == "user"]
        hit = next((m for m in map(index.match, texts) if m is not None), None)
        if hit is None:
            row["kept"] += 1
            kept.append(record)
        else:
            row[hit[0]] += 1
    return kept, report


def overlap_count(prompts: Iterable[str], index: EvalIndex) -> int:
    """How many prompts match an eval prompt at any level (the mix stage asserts this is 0)."""
    return sum(index.match(p) is not None for p in prompts)
