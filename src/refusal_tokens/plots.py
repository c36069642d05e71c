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


def init_curves(curves: pd.DataFrame, path: str | os.PathLike | None = None):
    """p(correct scheme token) and validation loss vs step, one line per token initialisation."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    sns.lineplot(data=curves, x="step", y="mean_p_label", hue="variant", marker="o", ax=axes[0])
    axes[0].set_yscale("log")
    axes[0].set_ylabel("mean p(correct scheme token)")
    sns.lineplot(data=curves, x="step", y="eval_loss", hue="variant", marker="o", ax=axes[1], legend=False)
    axes[1].set_ylabel("validation loss")
    fig.tight_layout()
    return _save(fig, path)


def loss_curves(losses: pd.DataFrame, path: str | os.PathLike | None = None):
    """Training loss per step, one line per variant."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.lineplot(data=losses, x="step", y="loss", hue="variant", ax=ax)
    ax.set_ylabel("training loss (completion tokens)")
    fig.tight_layout()
    return _save(fig, path)


def p_refusal_by_category(scores: pd.DataFrame, path: str | os.PathLike | None = None):
    """p(refusal) at the first response position on validation prompts, by category, before vs after SFT."""
    grid = sns.catplot(data=scores, kind="box", y="category", x="p_refusal", hue="should_refuse", col="model",
                       row="variant", height=2.8, aspect=1.3, fliersize=2,
                       palette={True: "#c44e52", False: "#4c72b0"})
    grid.set_titles("{row_name} · {col_name}")
    grid.set_axis_labels("p(refusal token(s))", "")
    return _save(grid.figure, path)
