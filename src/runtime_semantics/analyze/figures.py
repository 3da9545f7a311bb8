"""The results figures: one function per figure, named after what it shows, each returning a Figure.

One style for all (seaborn's whitegrid, paper context), one colour per condition from the
Okabe-Ito colour-blind-safe set (a training condition keeps its hue; the mismatched runtime
is the lighter shade), one panel per difficulty. Files are written as PNG and PDF without
timestamps or software versions, so re-running on the same data gives the same bytes.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..agent.metrics import FAILURE_KINDS  # noqa: E402
from .conditions import condition_label, condition_order, difficulty_order  # noqa: E402
from .record import CellSummary, Estimate  # noqa: E402

CONDITION_COLOURS = {
    "base.persistent": "#949494",
    "base.stateless": "#c8c8c8",
    "trained-persistent.persistent": "#0072b2",
    "trained-persistent.stateless": "#56b4e9",
    "trained-stateless.persistent": "#d55e00",
    "trained-stateless.stateless": "#e69f00",
}
TRAINING_COLOURS = {"persistent": CONDITION_COLOURS["trained-persistent.persistent"], "stateless": CONDITION_COLOURS["trained-stateless.stateless"]}
_DETERMINISTIC_RC = {"svg.hashsalt": "runtime-semantics", "savefig.dpi": 150, "pdf.fonttype": 42}
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
MAX_ERROR_TYPES = 6
# First-failure kinds: failures before the runtime could matter in reds, name errors in oranges,
# other failures in purples and greys, episodes with no failing turn in blues and green.
FAILURE_COLOURS = {
    "no_code_block": "#b2182b", "syntax_error": "#ef8a62", "missing_variable": "#e69f00", "other_name_error": "#f0e442",
    "tool_refused": "#cc79a7", "runtime_limit": "#8e6bb8", "other_error": "#bdbdbd", "infrastructure": "#636363",
    "turn_limit": "#92c5de", "context_limit": "#4393c3", "finished_below_optimal": "#2166ac", "solved": "#009e73",
}
# Every axis that shows a score or a share of episodes: the same fixed 0-100 range in every panel
# and every report, so panels compare at a glance (an all-zero panel is not stretched to +/-0.04).
PERCENT_AXIS = (0.0, 100.0)
logging.getLogger("fontTools").setLevel(logging.WARNING)  # it logs every font subset at INFO


@contextmanager
def figure_style() -> Iterator[None]:
    """The one style every figure is drawn and saved in (without touching global settings)."""
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.1), **_DETERMINISTIC_RC}
    with plt.rc_context(rc):
        yield


def _difficulties(values: Sequence[str]) -> list[str]:
    return sorted(set(values), key=difficulty_order)


def _conditions(values: Sequence[str]) -> list[str]:
    return sorted(set(values), key=condition_order)


def _panels(difficulties: Sequence[str], *, height: float) -> tuple[Figure, list[plt.Axes]]:
    fig, axes = plt.subplots(1, len(difficulties), figsize=(5.2 * len(difficulties), height), sharey=True, squeeze=False)
    for ax, difficulty in zip(axes[0], difficulties, strict=True):
        ax.set_title(f"{difficulty} tasks")
    return fig, list(axes[0])


def _bars_with_intervals(cells: Sequence[CellSummary], value: Callable[[CellSummary], Estimate], xlabel: str, scale: float = 1.0) -> Figure:
    """Horizontal bars of a percentage per condition with its interval, one panel per difficulty."""
    difficulties = _difficulties([c.difficulty for c in cells])
    conditions = _conditions([c.condition for c in cells])
    fig, axes = _panels(difficulties, height=0.5 * len(conditions) + 1.4)
    for ax, difficulty in zip(axes, difficulties, strict=True):
        by_condition = {c.condition: value(c) for c in cells if c.difficulty == difficulty}
        for row, condition in enumerate(conditions):
            if condition not in by_condition:
                continue
            estimate = by_condition[condition]
            v, lo, hi = (scale * x for x in (estimate.value, estimate.low, estimate.high))
            ax.barh(row, v, color=CONDITION_COLOURS[condition], edgecolor="black", linewidth=0.5)
            ax.errorbar(v, row, xerr=[[v - lo], [hi - v]], color="black", capsize=3, linewidth=1)
        ax.set_yticks(range(len(conditions)), [condition_label(c) for c in conditions])
        ax.set_xlabel(xlabel)
        ax.set_xlim(*PERCENT_AXIS)
    axes[0].set_ylabel("condition (training → runtime)")
    axes[0].invert_yaxis()  # first condition on top (the panels share this axis)
    fig.tight_layout()
    return fig


def score_by_condition(cells: Sequence[CellSummary]) -> Figure:
    """Mean score (% of optimal) per condition with its 95% bootstrap interval."""
    return _bars_with_intervals(cells, lambda c: c.score_pct, "Score (% of optimal, 95% CI)")


def missing_variable_rate_by_condition(cells: Sequence[CellSummary]) -> Figure:
    """Share of episodes with a missing-variable error per condition, 95% Wilson interval (claim 2)."""
    return _bars_with_intervals(cells, lambda c: c.missing_variable_rate, "Missing-variable episodes (%, 95% CI)", scale=100)


def _plain_log_axis(axis) -> None:
    """Log-scale ticks at 1, 2 and 5 per decade, written out in full (10,000 rather than 10^4)."""
    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _distribution(episodes: pd.DataFrame, column: str, xlabel: str, *, log_scale: bool) -> Figure:
    difficulties = _difficulties(episodes["difficulty"].tolist())
    conditions = _conditions(episodes["condition"].tolist())
    labels = [condition_label(c) for c in conditions]
    palette = {condition_label(c): CONDITION_COLOURS[c] for c in conditions}
    fig, axes = _panels(difficulties, height=0.5 * len(conditions) + 1.4)
    for ax, difficulty in zip(axes, difficulties, strict=True):
        data = episodes[episodes["difficulty"] == difficulty].assign(label=lambda d: d["condition"].map(condition_label))
        with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11 a deprecated argument
            warnings.filterwarnings("ignore", message="vert: bool was deprecated")
            sns.boxplot(data=data, x=column, y="label", hue="label", order=labels, hue_order=labels, palette=palette,
                        showfliers=False, legend=False, ax=ax, log_scale=log_scale, linewidth=0.8)
        jitter = np.random.default_rng(0)  # seaborn's stripplot jitters from the global random state
        for row, label in enumerate(labels):
            values = data.loc[data["label"] == label, column].to_numpy()
            ax.scatter(values, row + jitter.uniform(-0.2, 0.2, len(values)), color="black", s=5, alpha=0.6, linewidths=0)
        if log_scale:
            _plain_log_axis(ax.xaxis)
        else:
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("")
    axes[0].set_ylabel("condition (training → runtime)")
    fig.tight_layout()
    return fig


def tokens_by_condition(episodes: pd.DataFrame) -> Figure:
    """Total tokens per episode by condition, log scale (claim 3's amnesia tax)."""
    return _distribution(episodes, "total_tokens", "Total tokens per episode (log scale)", log_scale=True)


def steps_distribution(episodes: pd.DataFrame) -> Figure:
    """Steps (assistant turns) per episode by condition."""
    return _distribution(episodes, "steps", "Steps per episode", log_scale=False)


def _stacked_rows(ax: plt.Axes, cells: Sequence[CellSummary], conditions: Sequence[str], kinds: Sequence[str],
                  colours: dict, value: Callable[[CellSummary, str], float]) -> None:
    """One horizontal bar per condition (a missing condition leaves its row empty), stacked by kind in order."""
    by_condition = {c.condition: c for c in cells}
    for row, condition in enumerate(conditions):
        if condition not in by_condition:
            continue
        left = 0.0
        for kind in kinds:
            width = value(by_condition[condition], kind)
            ax.barh(row, width, left=left, color=colours[kind], edgecolor="black", linewidth=0.4)
            left += width
    ax.set_yticks(range(len(conditions)), [condition_label(c) for c in conditions])


def error_types_by_condition(cells: Sequence[CellSummary]) -> Figure:
    """Mean failing turns per episode by error type, stacked per condition."""
    totals: dict[str, float] = {}
    for cell in cells:
        for kind, rate in cell.errors_per_episode.items():
            totals[kind] = totals.get(kind, 0.0) + rate
    ranked = sorted(totals, key=lambda k: (-totals[k], k))
    kinds = ranked[:MAX_ERROR_TYPES] + (["other"] if len(ranked) > MAX_ERROR_TYPES else [])
    colours = dict(zip(kinds, sns.color_palette("colorblind", len(kinds)), strict=True))
    difficulties = _difficulties([c.difficulty for c in cells])
    conditions = _conditions([c.condition for c in cells])
    fig, axes = _panels(difficulties, height=0.5 * len(conditions) + 1.8)
    def rate(cell: CellSummary, kind: str) -> float:
        rates = cell.errors_per_episode
        return rates.get(kind, 0.0) if kind != "other" else sum(r for k, r in rates.items() if k not in kinds)

    for ax, difficulty in zip(axes, difficulties, strict=True):
        _stacked_rows(ax, [c for c in cells if c.difficulty == difficulty], conditions, kinds, colours, rate)
        ax.set_xlabel("Failing turns per episode, by error type")
    axes[0].set_ylabel("condition (training → runtime)")
    axes[0].invert_yaxis()  # first condition on top (the panels share this axis)
    if kinds:
        handles = [plt.Rectangle((0, 0), 1, 1, color=colours[k]) for k in kinds]
        fig.legend(handles, kinds, loc="lower center", ncol=min(len(kinds), 4), frameon=False, title="error type")
        fig.tight_layout(rect=(0, 0.12 + 0.05 * (len(kinds) > 4), 1, 1))
    else:
        fig.tight_layout()
    return fig


def first_failure_kinds(cells: Sequence[CellSummary]) -> Figure:
    """Share of episodes by the kind of their first failure, stacked to 100% per condition."""
    kinds = [k for k in FAILURE_KINDS if any(c.first_failures.get(k, 0.0) > 0 for c in cells)]
    difficulties = _difficulties([c.difficulty for c in cells])
    conditions = _conditions([c.condition for c in cells])
    fig, axes = _panels(difficulties, height=0.5 * len(conditions) + 2.6)
    for ax, difficulty in zip(axes, difficulties, strict=True):
        _stacked_rows(ax, [c for c in cells if c.difficulty == difficulty], conditions, kinds, FAILURE_COLOURS,
                      lambda cell, kind: 100 * cell.first_failures.get(kind, 0.0))
        ax.set_xlim(*PERCENT_AXIS)  # the shares of a row sum to 100: no bar is cut off
        ax.set_xlabel("Episodes by first failure (%)")
    axes[0].set_ylabel("condition (training → runtime)")
    axes[0].invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=FAILURE_COLOURS[k]) for k in kinds]
    fig.legend(handles, [FAILURE_KINDS[k] for k in kinds], loc="lower center", ncol=2, frameon=False, fontsize="small")
    fig.tight_layout(rect=(0, 0.06 * ((len(kinds) + 1) // 2) + 0.02, 1, 1))
    return fig


def score_vs_tokens(cells: Sequence[CellSummary]) -> Figure:
    """The paper's main figure: mean score against mean total tokens (log scale), one point per condition."""
    difficulties = _difficulties([c.difficulty for c in cells])
    fig, axes = plt.subplots(1, len(difficulties), figsize=(5.2 * len(difficulties), 4.2), sharey=True, squeeze=False)
    for ax, difficulty in zip(axes[0], difficulties, strict=True):
        for cell in (c for c in cells if c.difficulty == difficulty):
            score = cell.score_pct
            ax.errorbar(cell.total_tokens, score.value, yerr=[[score.value - score.low], [score.high - score.value]], fmt="o",
                        color=CONDITION_COLOURS[cell.condition], markeredgecolor="black", capsize=3, label=condition_label(cell.condition),
                        clip_on=False)  # a point at 0 or 100 is drawn whole on the axis' edge
        ax.set_ylim(*PERCENT_AXIS)
        ax.set_xscale("log")
        _plain_log_axis(ax.xaxis)
        ax.set_title(f"{difficulty} tasks")
        ax.set_xlabel("Mean total tokens per episode (log scale)")
    axes[0][0].set_ylabel("Score (% of optimal, 95% CI)")  # the panels share this axis
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig


def training_loss_curves(losses: pd.DataFrame) -> Figure:
    """Training and validation loss against optimizer step, one line per training condition and seed."""
    data = losses.assign(training=lambda d: d["runtime"] + " traces")
    palette = {f"{runtime} traces": colour for runtime, colour in TRAINING_COLOURS.items()}
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    sns.lineplot(data=data, x="step", y="loss", hue="training", style="split", units="seed", estimator=None, palette=palette,
                 markers=True, dashes=True, ax=ax)
    ax.set_xlabel("Optimizer step")
    ax.set_ylabel("Loss (assistant tokens)")
    ax.legend(title=None)
    fig.tight_layout()
    return fig


def score_by_seed(seeds: Sequence[tuple[int | None, Sequence[CellSummary]]]) -> Figure:
    """Mean score per condition, one point (with its 95% bootstrap interval) per training seed: the spread
    between fine-tuning runs beside the spread within one."""
    cells = [c for _, group in seeds for c in group]
    difficulties = _difficulties([c.difficulty for c in cells])
    conditions = _conditions([c.condition for c in cells])
    fig, axes = _panels(difficulties, height=0.55 * len(conditions) + 1.6)
    offsets = {seed: (i - (len(seeds) - 1) / 2) * 0.18 for i, (seed, _) in enumerate(seeds)}
    markers = "osD^vP*X"
    for ax, difficulty in zip(axes, difficulties, strict=True):
        for i, (seed, group) in enumerate(seeds):
            for cell in (c for c in group if c.difficulty == difficulty):
                row = conditions.index(cell.condition) + offsets[seed]
                v, lo, hi = cell.score_pct.value, cell.score_pct.low, cell.score_pct.high
                ax.errorbar(v, row, xerr=[[v - lo], [hi - v]], fmt=markers[i % len(markers)], color=CONDITION_COLOURS[cell.condition],
                            markeredgecolor="black", capsize=2, linewidth=1, label=f"seed {seed}" if ax is axes[0] else None)
        ax.set_yticks(range(len(conditions)), [condition_label(c) for c in conditions])
        ax.set_xlabel("Score (% of optimal, 95% CI per seed)")
        ax.set_xlim(*PERCENT_AXIS)
    axes[0].set_ylabel("condition (training → runtime)")
    axes[0].invert_yaxis()
    handles = [plt.Line2D([], [], marker=markers[i % len(markers)], linestyle="none", color="grey", markeredgecolor="black")
               for i in range(len(seeds))]
    fig.legend(handles, [f"seed {seed}" for seed, _ in seeds], loc="lower center", ncol=len(seeds), frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def save_figure(fig: Figure, out_dir: Path, name: str) -> None:
    """<name>.png and <name>.pdf, with no timestamp or version inside: same data, same bytes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / f"{name}.png", metadata=PNG_METADATA)
    fig.savefig(out_dir / f"{name}.pdf", metadata=PDF_METADATA)
    plt.close(fig)


def write_figures(
    out_dir: Path, cells: Sequence[CellSummary], episodes: pd.DataFrame, losses: pd.DataFrame,
    seeds: Sequence[tuple[int | None, Sequence[CellSummary]]] = (),
) -> list[str]:
    """Draw and save every figure the data allows; the loss curves only when training logs exist, the
    per-seed scores only with more than one training seed."""
    drawings = {
        "score_by_condition": lambda: score_by_condition(cells),
        "score_vs_tokens": lambda: score_vs_tokens(cells),
        "tokens_by_condition": lambda: tokens_by_condition(episodes),
        "missing_variable_rate_by_condition": lambda: missing_variable_rate_by_condition(cells),
        "error_types_by_condition": lambda: error_types_by_condition(cells),
        "first_failure_kinds": lambda: first_failure_kinds(cells),
        "steps_distribution": lambda: steps_distribution(episodes),
    }
    if len(seeds) > 1:
        drawings["score_by_seed"] = lambda: score_by_seed(seeds)
    if not losses.empty:
        drawings["training_loss_curves"] = lambda: training_loss_curves(losses)
    with figure_style():
        for name, draw in drawings.items():
            save_figure(draw(), out_dir, name)
    return list(drawings)
