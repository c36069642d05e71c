"""Decontamination: no training prompt may match an evaluation prompt, in wording or in meaning.

Four match levels, checked in order; a prompt is counted under the first level that hits:

- ``exact``: identical after stripping outer whitespace;
- ``normalised``: identical after :func:`normalise` (Unicode NFKC, lowercase, punctuation removed, whitespace
  collapsed);
- ``fuzzy``: word-set Jaccard similarity ≥ ``threshold`` (default 0.8, the mirror's own check) between the
  normalised word sets, found with a prefix filter so it stays fast (two sets with J ≥ t must share one of
  the first ``|A| - ceil(t·|A|) + 1`` rarest words of A);
- ``semantic``: cosine similarity ≥ ``semantic_threshold`` between TF-IDF vectors of character 3–5-grams within
  word boundaries (sublinear tf, IDF fitted on the evaluation prompts). Character n-grams catch paraphrases that
  share stems ("What does money laundering mean?" vs "What is money laundering?": 0.69) and check prompts of any
  length, however short; word 4-gram or Jaccard checks miss both. The threshold was chosen by reading the closest
  pairs (``closest_pairs``; the data card lists 20 per evaluation set).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .sources import Record

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
LEVELS = ("exact", "normalised", "fuzzy", "semantic")
SEMANTIC_THRESHOLD = 0.6  # chosen by reading the closest pairs (README: Decontamination)


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
    semantic_threshold: float = SEMANTIC_THRESHOLD

    def __post_init__(self) -> None:
        self.exact: dict[str, str] = {}
        self.normalised: dict[str, str] = {}
        self.sets: list[tuple[frozenset[str], str]] = []
        self.postings: dict[str, list[int]] = defaultdict(list)
        self.frequency: Counter[str] = Counter()
        self.prompts: list[tuple[str, str]] = []  # (prompt, eval source), in the order of ``sets``

    @classmethod
    def build(cls, eval_sets: dict[str, Sequence[Record]], threshold: float = 0.8,
              semantic_threshold: float = SEMANTIC_THRESHOLD) -> "EvalIndex":
        index = cls(threshold, semantic_threshold)
        for name, records in eval_sets.items():
            for record in records:
                index.add(record.prompt, name)
        index._finish()
        return index

    def add(self, prompt: str, source: str) -> None:
        self.exact.setdefault(prompt.strip(), source)
        self.normalised.setdefault(normalise(prompt), source)
        self.sets.append((words(prompt), source))
        self.prompts.append((prompt, source))

    def _finish(self) -> None:
        self.vectorizer = None
        if self.prompts:
            from sklearn.feature_extraction.text import TfidfVectorizer

            self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                                              preprocessor=normalise, dtype=np.float32)
            self.matrix = self.vectorizer.fit_transform([p for p, _ in self.prompts]).T.tocsr()
        for word_set, _ in self.sets:
            self.frequency.update(word_set)
        for i, (word_set, _) in enumerate(self.sets):
            for word in self._prefix(word_set):
                self.postings[word].append(i)

    def _prefix(self, word_set: frozenset[str]) -> list[str]:
        ordered = sorted(word_set, key=lambda w: (self.frequency.get(w, 0), w))
        keep = len(ordered) - math.ceil(self.threshold * len(ordered)) + 1
        return ordered[:max(keep, 1)]

    def _similarities(self, prompts: Sequence[str], chunk: int):
        """``(start, cosines to every evaluation prompt)`` per ``chunk`` prompts: one sparse product each."""
        for start in range(0, len(prompts), chunk):
            yield start, (self.vectorizer.transform(prompts[start:start + chunk]) @ self.matrix).toarray()

    def nearest(self, prompts: Sequence[str], chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """For each prompt, the highest TF-IDF cosine to any evaluation prompt and that prompt's position in
        ``self.prompts`` (0.0 and -1 for an empty index)."""
        best = np.zeros(len(prompts), dtype=np.float32)
        where = np.full(len(prompts), -1, dtype=np.int64)
        if self.vectorizer is None or not prompts:
            return best, where
        for start, sims in self._similarities(prompts, chunk):
            where[start:start + chunk] = sims.argmax(axis=1)
            best[start:start + chunk] = sims.max(axis=1)
        return best, where

    def nearest_by_set(self, prompts: Sequence[str], chunk: int = 512) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Like :meth:`nearest`, per evaluation set: ``set → (cosine, position in self.prompts)`` for each prompt."""
        if self.vectorizer is None or not prompts:
            return {}
        columns: dict[str, list[int]] = defaultdict(list)
        for i, (_, source) in enumerate(self.prompts):
            columns[source].append(i)
        out = {source: (np.zeros(len(prompts), dtype=np.float32), np.zeros(len(prompts), dtype=np.int64))
               for source in columns}
        for start, sims in self._similarities(prompts, chunk):
            for source, cols in columns.items():
                part = sims[:, cols]
                arg = part.argmax(axis=1)
                out[source][0][start:start + chunk] = part[np.arange(len(part)), arg]
                out[source][1][start:start + chunk] = np.asarray(cols)[arg]
        return out

    def match(self, prompt: str, cosine: float | None = None, nearest: int = -1) -> tuple[str, str] | None:
        """``(level, eval source)`` of the first match, or None. ``cosine``/``nearest``: the prompt's
        :meth:`nearest` result when already computed in a batch."""
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
        if cosine is None:
            (cosine,), (nearest,) = self.nearest([prompt])
        if nearest >= 0 and cosine >= self.semantic_threshold:
            return "semantic", self.prompts[nearest][1]
        return None


def decontaminate(records: Iterable[Record], index: EvalIndex) -> tuple[list[Record], dict[str, dict[str, int]]]:
    """Drop every record whose prompt (or any earlier turn's user message) matches an eval prompt.

    Returns the kept records and, per training source, ``{candidates, exact, normalised, fuzzy, kept}``.
    """
    kept: list[Record] = []
    report: dict[str, dict[str, int]] = {}
    records = list(records)
    texts = [[record.prompt] + [t["content"] for t in record.conversation or () if t.get("role") == "user"]
             for record in records]
    flat = [text for group in texts for text in group]
    cosines, nearest = index.nearest(flat)
    k = 0
    for record, group in zip(records, texts):
        row = report.setdefault(record.source, {"candidates": 0, **{level: 0 for level in LEVELS}, "kept": 0})
        row["candidates"] += 1
        hits = [index.match(text, float(cosines[k + j]), int(nearest[k + j])) for j, text in enumerate(group)]
        k += len(group)
        hit = next((m for m in hits if m is not None), None)
        if hit is None:
            row["kept"] += 1
            kept.append(record)
        else:
            row[hit[0]] += 1
    return kept, report


def overlap_count(prompts: Iterable[str], index: EvalIndex) -> int:
    """How many prompts match an eval prompt at any level (the mix stage asserts this is 0)."""
    prompts = list(prompts)
    cosines, nearest = index.nearest(prompts)
    return sum(index.match(p, float(c), int(n)) is not None for p, c, n in zip(prompts, cosines, nearest))


def closest_pairs(records: Sequence[Record], index: EvalIndex, k: int = 20) -> dict[str, list[dict]]:
    """Per evaluation set, the ``k`` training prompts closest to one of its prompts (TF-IDF cosine), closest first:
    ``{cosine, train, train_source, eval}``. Read on the rows a mix keeps, they show how near the threshold the
    nearest survivors are."""
    prompts = [r.prompt for r in records]
    out: dict[str, list[dict]] = {}
    for source, (cosines, where) in sorted(index.nearest_by_set(prompts).items()):
        order = np.argsort(-cosines, kind="stable")[:k]
        out[source] = [{"cosine": round(float(cosines[i]), 3), "train": prompts[i], "train_source": records[i].source,
                        "eval": index.prompts[int(where[i])][0]} for i in order]
    return out
