"""Figures of the study (seaborn). Each function returns the matplotlib Figure and, given a path, saves it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

# In a Jupyter kernel (papermill, nbval, JupyterLab) ipykernel sets MPLBACKEND to its inline backend, so every
# figure a cell makes is shown right under it and kept in the executed notebook; elsewhere (scripts, CI) no
# display: Agg.
if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

SIDES = {True: ("#c44e52", "original (should refuse)"), False: ("#4c72b0", "contrast (should answer)")}


def _save(fig, path: str | os.PathLike | None):
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None})  # byte-stable PNGs
    return fig


def _panels(n: int, width: float = 3.6, height: float = 2.8, columns: int = 3):
    """A figure of ``n`` panels, ``columns`` to a row, axes shared; returns (fig, axes[rows, cols])."""
    columns = min(columns, n)
    rows = -(-n // columns)
    return plt.subplots(rows, columns, figsize=(width * columns, height * rows), sharex=True, sharey=True,
                        squeeze=False)


def _label_panels(axes, n: int, xlabel: str, ylabel: str) -> None:
    """Hide the unused panels; x labels on the bottom row, y labels on the first column."""
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)


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


def loss_curves(losses: pd.DataFrame, path: str | os.PathLike | None = None, window: int = 10):
    """Training loss per step, one colour per variant: the raw per-step loss faint, its centred rolling mean over
    ``window`` steps solid (one batch of 8 rows is a noisy estimate); integer step ticks, legend outside."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 3.2))
    variants = list(dict.fromkeys(losses["variant"]))
    for variant, colour in zip(variants, sns.color_palette("tab10", len(variants))):
        part = losses[losses["variant"] == variant].sort_values("step")
        ax.plot(part["step"], part["loss"], color=colour, alpha=0.25, lw=0.8)
        smooth = part["loss"].rolling(window, center=True, min_periods=1).mean()
        ax.plot(part["step"], smooth, color=colour, lw=1.8, label=variant)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="step", ylabel="training loss (completion tokens)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
              title=f"rolling mean, {window} steps")
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
    """One point per (model, setting), on the axes of notebook 03's front: x the refusal rate where prompts should
    be answered (lower: more helpful), y where they should be refused (higher: safer), both pooled over the table's
    splits, with Wilson 95% intervals as error bars (``report.tradeoff_points``). Settings of one model that land
    on the same point share one label."""
    fig, ax = plt.subplots(figsize=(6.6, 4.8))
    colours = dict(zip(frame["model"].unique(), sns.color_palette("colorblind", frame["model"].nunique())))
    for model, part in frame.groupby("model", sort=False):
        ax.errorbar(part["answer"], part["refuse"], xerr=[part["answer"] - part["answer_low"],
                                                          part["answer_high"] - part["answer"]],
                    yerr=[part["refuse"] - part["refuse_low"], part["refuse_high"] - part["refuse"]],
                    fmt="o", ms=6, lw=1, capsize=2, color=colours[model], label=model)
    for (x, y), part in frame.groupby(["answer", "refuse"], sort=False):
        settings = [c.split("·")[1].split("(")[0].strip() for c in part["column"] if "·" in c]
        if settings:
            ax.annotate(", ".join(dict.fromkeys(settings)), (x, y), fontsize=7, xytext=(5, -10),
                        textcoords="offset points")
    ax.set(xlabel="refusal rate where prompts should be answered (lower: more helpful)",
           ylabel="refusal rate where prompts should be refused (higher: safer)", xlim=(-0.02, 1.02),
           ylim=(-0.02, 1.02), title=f"judge: {judge} · better: up and to the left" if judge else "")
    ax.legend(fontsize=7, loc="lower right")
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
    fig, axes = _panels(len(groups), height=2.9)
    styles = SIDES
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
    _label_panels(axes, len(groups), "threshold t", "token refusal rate")
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes.flat), key=lambda hl: len(hl[1]))
    marks = ", ".join(f"{k} t = {v:g}" for k, v in chosen.items())
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 1.06), ncol=2, frameon=False,
               title=f"dashed: thresholds chosen on validation ({marks})")
    fig.tight_layout()
    return _save(fig, path)


def front(curves: pd.DataFrame, points: pd.DataFrame, path: str | os.PathLike | None = None):
    """The trade-off front: each token model's full threshold sweep as a connected line (x: refusal where it
    should answer, y: refusal where it should refuse), every other model or setting as a point with Wilson 95%
    intervals on both axes (``calibration.tradeoff_front``). Up and to the left is better."""
    fig, ax = plt.subplots(figsize=(6.2, 4.8))
    # one colour per token model (its token sweep solid, its text sweep dashed); points in another palette
    owners = list(dict.fromkeys(m.split(":")[0] for m in curves["model"]))
    line_colours = dict(zip(owners, ["#222222", "#7f7f7f", "#8c564b", "#bcbd22"]))
    for (model, judge), part in curves.groupby(["model", "judge"], sort=False):
        ax.plot(part["fpr"], part["tpr"], drawstyle="steps-post" if judge == "token" else "default",
                ls="-" if judge == "token" else "--", marker=None if judge == "token" else ".", lw=1.4, label=model,
                color=line_colours.get(model.split(":")[0]))
    markers = {"token setting": "o", "retrained": "s", "system prompt": "^", "reference": "*"}
    for (_, row), colour in zip(points.iterrows(), sns.color_palette("tab10", len(points))):
        ax.errorbar(row["fpr"], row["tpr"], xerr=[[row["fpr"] - row["fpr_low"]], [row["fpr_high"] - row["fpr"]]],
                    yerr=[[row["tpr"] - row["tpr_low"]], [row["tpr_high"] - row["tpr"]]], fmt=markers.get(row["kind"], "o"),
                    ms=9 if row["kind"] == "reference" else 6, color=colour, ecolor=colour, elinewidth=0.8, capsize=2,
                    label=f"{row['label']} ({row['judge']})", zorder=3)
    ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    ax.set(xlabel="refusal rate where it should answer (CoCoNot contrast)",
           ylabel="refusal rate where it should refuse (CoCoNot original)", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def threshold_metrics(curve: pd.DataFrame, refuse_everything: dict[str, float], path: str | os.PathLike | None = None):
    """TPR and FPR vs threshold on one axis, F1 vs threshold below it with the refuse-everything F1 as a dashed
    line; one column per split. ``curve``: ``calibration.f1_curve`` rows with ``model`` and ``split`` columns;
    ``refuse_everything``: split → F1 of refusing every prompt."""
    splits = list(dict.fromkeys(curve["split"]))
    fig, axes = plt.subplots(2, len(splits), figsize=(4.2 * len(splits), 5.4), sharex=True, squeeze=False)
    colours = dict(zip(dict.fromkeys(curve["model"]), sns.color_palette("tab10")))
    for col, split in enumerate(splits):
        top, bottom = axes[0, col], axes[1, col]
        for model, part in curve[curve["split"] == split].groupby("model", sort=False):
            part = part.sort_values("threshold")
            top.plot(part["threshold"], part["tpr"], color=colours[model], label=f"{model}: TPR")
            top.plot(part["threshold"], part["fpr"], color=colours[model], ls="--", label=f"{model}: FPR")
            bottom.plot(part["threshold"], part["f1"], color=colours[model], marker="o", ms=2.5, label=model)
        bottom.axhline(refuse_everything[split], color="black", ls=":", lw=1.2,
                       label=f"refuse everything (F1 {refuse_everything[split]:.2f})")
        top.set(title=split, ylabel="rate" if col == 0 else "", ylim=(-0.02, 1.02))
        bottom.set(xlabel="threshold t", ylabel="F1 (refusal = positive)" if col == 0 else "", ylim=(-0.02, 1.02))
        bottom.legend(fontsize=7, loc="lower left")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def control_curves(curves: pd.DataFrame, chosen_base: float, path: str | os.PathLike | None = None):
    """Category independence: one panel per category token whose threshold is raised (the others stay at
    ``chosen_base``); in it, every category's token refusal rate on prompts that should be refused. The raised
    category's own line is thick; a working, independent dial moves only that line.
    ``curves``: ``calibration.category_control_curves`` output."""
    raised = list(dict.fromkeys(curves["raised"]))
    original = curves[curves["should_refuse"]]
    colours = dict(zip(raised, sns.color_palette("tab10")))
    fig, axes = _panels(len(raised))
    for ax, category in zip(axes.flat, raised):
        part = original[original["raised"] == category]
        for group, line in part.groupby("group", sort=False):
            own = group == category
            ax.plot(line["threshold"], line["rate"], color=colours.get(group, "grey"), lw=2.6 if own else 1.0,
                    alpha=1.0 if own else 0.7, label=group)
            if own:
                ax.fill_between(line["threshold"], line["ci_low"], line["ci_high"], color=colours.get(group, "grey"),
                                alpha=0.15, lw=0)
        ax.set_title(f"raise: {category}", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
    _label_panels(axes, len(raised), "raised token's threshold t", "token refusal rate")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[c], lw=1.6, label=c) for c in raised]
    fig.tight_layout()
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False,
               title=f"refusal rate per category (original prompts); other tokens' thresholds stay at {chosen_base:g}")
    return _save(fig, path)


def p_refusal_ecdf(frame: pd.DataFrame, path: str | os.PathLike | None = None, floor: float = 1e-6):
    """Per category, the empirical CDF of p(refusal) on prompts that should be refused and on prompts that should
    be answered, on a log axis (probabilities pile up near 0). Separated curves = a token that separates;
    overlapping curves = no threshold can. Values below ``floor`` are drawn at ``floor``."""
    import numpy as np

    groups = sorted(frame["category"].unique())
    fig, axes = _panels(len(groups))
    for ax, group in zip(axes.flat, groups):
        part = frame[frame["category"] == group]
        for should_refuse, (colour, label) in SIDES.items():
            values = np.sort(np.clip(part.loc[part["should_refuse"] == should_refuse, "p_refusal"], floor, 1.0))
            if len(values):  # the curve starts at (floor, 0) and ends at (1, 1): full decades on every panel
                xs = np.concatenate([[floor], values, [1.0]])
                ys = np.concatenate([[0.0], np.arange(1, len(values) + 1) / len(values), [1.0]])
                ax.step(xs, ys, where="post", color=colour, label=f"{label}, n={len(values)}")
        ax.set_xscale("log")
        ax.set_xlim(floor, 1.0)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(group, fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
    _label_panels(axes, len(groups), "p(refusal) at the first response position", "share of prompts ≤ x")
    fig.tight_layout()
    return _save(fig, path)
