"""Figures of the study (seaborn). Each function returns the matplotlib Figure and, given a path, saves it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: papermill, nbval and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def _save(fig, path: str | os.PathLike | None):
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None})  # byte-stable PNGs
    return fig


def category_mix(composition: pd.DataFrame, path: str | os.PathLike | None = None):
    """Rows per category, refusals vs answers, one panel per mix (train + validation)."""
    frame = composition.assign(label=composition["should_refuse"].map({True: "refuse", False: "answer"}))
    frame = frame.groupby(["mix", "category", "label"], as_index=False)["rows"].sum()
    grid = sns.catplot(data=frame, kind="bar", y="category", x="rows", hue="label", col="mix",
                       height=3.2, aspect=1.1, palette={"refuse": "#c44e52", "answer": "#4c72b0"})
    grid.set_titles("mix {col_name}")
    grid.set_axis_labels("rows", "")
    return _save(grid.figure, path)


def response_lengths(examples: pd.DataFrame, path: str | os.PathLike | None = None):
    """Distribution of response length (≈tokens) for refusals and answers."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.histplot(data=examples, x="response_tokens", hue="label", bins=30, element="step", ax=ax,
                 palette={"refuse": "#c44e52", "answer": "#4c72b0"})
    ax.set_xlabel("response length (≈ tokens, 4 chars/token)")
    fig.tight_layout()
    return _save(fig, path)


def close(figures: Sequence) -> None:
    for fig in figures:
        plt.close(fig)
