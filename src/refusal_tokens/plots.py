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
    """p(correct scheme token), AUROC of p(refusal) and validation loss vs step, one line per variant."""
    from matplotlib.ticker import MaxNLocator

    panels = [("mean_p_label", "mean p(correct scheme token)", "log"), ("auroc", "AUROC p(refusal), validation", None),
              ("eval_loss", "validation loss", None)]
    panels = [p for p in panels if p[0] in curves and curves[p[0]].notna().any()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for k, (ax, (column, label, scale)) in enumerate(zip(axes[0], panels)):
        sns.lineplot(data=curves, x="step", y=column, hue="variant", marker="o", ax=ax, legend=k == len(panels) - 1)
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if scale:
            ax.set_yscale(scale)
    legend = axes[0][-1].get_legend()
    if legend is not None:
        legend.set_bbox_to_anchor((1.02, 1))
        legend.set_loc("upper left")
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


# ------------------------------------------------------------------------------------ calibration (notebook 03)

def roc(curves: pd.DataFrame, points: pd.DataFrame, path: str | os.PathLike | None = None):
    """ROC curves of the threshold sweep (``curves``: model, fpr, tpr) with other settings or models as points
    (``points``: label, fpr, tpr)."""
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    sns.lineplot(data=curves, x="fpr", y="tpr", hue="model", estimator=None, sort=False, ax=ax, drawstyle="steps-post")
    markers = iter("osD^vPX*<>")
    for label, part in points.groupby("label", sort=False):
        ax.scatter(part["fpr"], part["tpr"], marker=next(markers, "o"), s=46, label=label, zorder=3)
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    ax.set(xlabel="FPR: refusal rate on prompts to answer", ylabel="TPR: refusal rate on prompts to refuse",
           xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def metric_vs(frame: pd.DataFrame, x: str, y: str, hue: str, col: str | None = None, path=None, ylabel: str = "",
              xlabel: str = "", logx: bool = False):
    """A line per ``hue`` (one panel per ``col``): F1 / refusal rate vs threshold, bias or temperature."""
    grid = sns.relplot(data=frame, x=x, y=y, hue=hue, col=col, kind="line", marker="o", markersize=3,
                       height=3.2, aspect=1.15, facet_kws={"sharey": True})
    grid.set_axis_labels(xlabel or x, ylabel or y)
    if col:
        grid.set_titles(f"{{col_name}}")
    if logx:
        grid.set(xscale="symlog")
    return _save(grid.figure, path)


def control_matrix(matrix: pd.DataFrame, path: str | os.PathLike | None = None, title: str = ""):
    """Heatmap: change in each category's refusal rate (columns) when one category's threshold is raised (rows)."""
    fig, ax = plt.subplots(figsize=(1.1 * matrix.shape[1] + 2.5, 0.55 * matrix.shape[0] + 1.6))
    sns.heatmap(matrix, annot=True, fmt="+.2f", center=0, cmap="RdBu_r", vmin=-1, vmax=1, ax=ax,
                cbar_kws={"label": "Δ token refusal rate"})
    ax.set(xlabel="measured category", ylabel="threshold raised for", title=title)
    fig.tight_layout()
    return _save(fig, path)


def rates_with_ci(frame: pd.DataFrame, x: str, y: str = "rate", hue: str | None = None,
                  path: str | os.PathLike | None = None, xlabel: str = "", ylabel: str = "refusal rate"):
    """Bars of a rate with Wilson 95% intervals (``ci_low``, ``ci_high``)."""
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * frame[x].nunique() * (frame[hue].nunique() if hue else 1)), 3.4))
    sns.barplot(data=frame, x=x, y=y, hue=hue, ax=ax, errorbar=None)
    xs = {label.get_text(): i for i, label in enumerate(ax.get_xticklabels())}
    hues = list(dict.fromkeys(frame[hue])) if hue else [None]
    width = 0.8 / len(hues)
    for _, row in frame.iterrows():
        offset = (hues.index(row[hue]) - (len(hues) - 1) / 2) * width if hue else 0.0
        ax.errorbar(xs[str(row[x])] + offset, row[y], yerr=[[row[y] - row["ci_low"]], [row["ci_high"] - row[y]]],
                    fmt="none", c="black", lw=1, capsize=2)
    ax.set(xlabel=xlabel or x, ylabel=ylabel, ylim=(0, 1.05))
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return _save(fig, path)


def stacked_outcomes(frame: pd.DataFrame, path: str | os.PathLike | None = None, title: str = ""):
    """Stacked compliance / refusal shares per group (``frame``: model, group, refusal, compliance), a panel per
    model (CoCoNot-style per-category bars, XSTest by type)."""
    models = list(dict.fromkeys(frame["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(2.6 * len(models) + 1.5, 0.32 * frame["group"].nunique() + 1.6),
                             sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        part = frame[frame["model"] == model].set_index("group")[["refusal", "compliance"]]
        part.plot.barh(stacked=True, ax=ax, color=["#c44e52", "#4c72b0"], legend=ax is axes[0][-1], width=0.8)
        ax.set(title=model, xlim=(0, 1), xlabel="share", ylabel="")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def tradeoff(frame: pd.DataFrame, path: str | os.PathLike | None = None, judge: str = ""):
    """One point per (model, setting): mean refusal rate on should-refuse splits (x) vs should-answer splits (y)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    sns.scatterplot(data=frame, x="refuse", y="answer", hue="model", style="model", s=70, ax=ax)
    for _, row in frame.iterrows():
        if "·" in row["column"]:
            ax.annotate(row["column"].split("·")[1].split("(")[0].strip(), (row["refuse"], row["answer"]),
                        fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set(xlabel="refusal rate where prompts should be refused (higher: safer)",
           ylabel="refusal rate where prompts should be answered (lower: more helpful)", xlim=(-0.02, 1.02),
           ylim=(-0.02, 1.02), title=f"judge: {judge}" if judge else "")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def ablation_bars(ablation: dict, path: str | os.PathLike | None = None):
    """The contrast-data ablation as paired bars: refusal rate with and without contrast data per evaluation set,
    with Wilson 95% intervals (``evidence.ablation`` output)."""
    import numpy as np

    names = list(ablation)
    fig, ax = plt.subplots(figsize=(7.5, 0.7 * len(names) + 1.2))
    height = 0.38
    for k, (label, colour) in enumerate((("with_contrast", "#4c72b0"), ("without_contrast", "#dd8452"))):
        rates = [ablation[n][label]["rate"] or 0.0 for n in names]
        lo = [r - ablation[n][label]["ci_low"] for r, n in zip(rates, names)]
        hi = [ablation[n][label]["ci_high"] - r for r, n in zip(rates, names)]
        y = np.arange(len(names)) + (k - 0.5) * height
        ax.barh(y, rates, height=height, color=colour, label=label.replace("_", " "), xerr=[lo, hi],
                error_kw={"lw": 1, "capsize": 2})
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("refusal rate at greedy decoding (token), 95% Wilson interval")
    ax.legend(title="training data", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def rate_vs_threshold_panels(frame: pd.DataFrame, chosen: dict[str, float], path: str | os.PathLike | None = None):
    """The paper's central picture: per category, the token refusal rate vs threshold on prompts that should be
    refused (original) and on prompts that should be answered (contrast), overlaid in one panel with Wilson 95%
    bands, and the thresholds chosen on validation marked. ``frame``: ``calibration.token_rates`` output with a
    ``threshold`` column; ``chosen``: label → threshold."""
    groups = sorted(frame["group"].unique())
    columns = min(3, len(groups))
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.9 * rows), sharex=True, sharey=True,
                             squeeze=False)
    styles = {True: ("#c44e52", "original (should refuse)"), False: ("#4c72b0", "contrast (should answer)")}
    for ax, group in zip(axes.flat, groups):
        part = frame[frame["group"] == group]
        for should_refuse, (colour, label) in styles.items():
            side = part[part["should_refuse"] == should_refuse].sort_values("threshold")
            if side.empty:
                continue
            n = int(side["n"].iloc[0])
            ax.plot(side["threshold"], side["rate"], color=colour, marker="o", markersize=2.5, label=label)
            ax.fill_between(side["threshold"], side["ci_low"], side["ci_high"], color=colour, alpha=0.15, lw=0)
            ax.text(0.98, 0.9 if should_refuse else 0.8, f"n={n}", color=colour, ha="right", fontsize=7,
                    transform=ax.transAxes)
        for name, t in chosen.items():
            ax.axvline(t, color="grey", ls="--", lw=0.8)
        ax.set_title(group, fontsize=9)
        ax.set_ylim(-0.02, 1.02)
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("threshold t")
    for ax in axes[:, 0]:
        ax.set_ylabel("token refusal rate")
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes.flat), key=lambda hl: len(hl[1]))
    marks = ", ".join(f"{k} t = {v:g}" for k, v in chosen.items())
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 1.06), ncol=2, frameon=False,
               title=f"dashed: thresholds chosen on validation ({marks})")
    fig.tight_layout()
    return _save(fig, path)
