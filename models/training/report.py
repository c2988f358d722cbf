"""The data and model report: PNG figures and one self-contained HTML page, logged with the run.

- data.png: default rate (with loan counts) by grade, sub_grade, term, purpose, state, income band
- correlations.png: rank correlations between the main fields and default
- performance.png: ROC and precision-recall curves (validation, test; network and baselines) and the
  network's calibration on both parts
- threshold.png: precision, recall, decline rate and expected loss around the chosen threshold (validation)
- importance.png: what the network relies on (validation AUC lost when one input is shuffled)

Figures are drawn with matplotlib's object API (no pyplot state), so this runs in any thread.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from models.features.spec import Features
from models.metrics import Costs, Thresholds, auc, calibration_bins, tradeoff
from models.scoring.scorer import Scorer
from models.training.data import Prepared

INCOME_BANDS = [0, 30_000, 50_000, 75_000, 100_000, 150_000, np.inf]
INCOME_LABELS = ["<30k", "30-50k", "50-75k", "75-100k", "100-150k", "150k+"]
NETWORK = "network"
CORRELATED = [
    "int_rate",
    "fico_range_low",
    "dti",
    "annual_inc",
    "revol_util",
    "inq_last_6mths",
    "loan_amnt",
    "term",
]


@dataclass
class Scored:
    """One model's probabilities on one part."""

    model: str
    part: str
    y: np.ndarray
    p: np.ndarray


def default_rates(frame: pd.DataFrame, by: str | pd.Series, top: int | None = None) -> pd.DataFrame:
    """Loans and default rate per value of `by` (a column name or a Series), largest groups first if `top`."""
    key = frame[by] if isinstance(by, str) else by
    table = cast(
        pd.DataFrame, frame.groupby(key, observed=True)["default"].agg(loans="size", default_rate="mean")
    )
    return table.sort_values("loans", ascending=False).head(top) if top else table


def _bars(ax: Axes, table: pd.DataFrame, title: str, overall: float) -> None:
    labels = [str(i) for i in table.index]
    ax.bar(labels, table["default_rate"] * 100, color="#4C72B0")
    ax.axhline(overall * 100, color="#C44E52", lw=1, ls="--", label=f"all loans {overall:.1%}")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("default rate %")
    ax.tick_params(axis="x", labelrotation=90 if len(labels) > 8 else 0, labelsize=7)
    for x, (rate, n) in enumerate(zip(table["default_rate"], table["loans"], strict=True)):
        if len(labels) <= 12:
            ax.text(x, rate * 100, f"{n:,}", ha="center", va="bottom", fontsize=6)
    ax.legend(fontsize=7)


def data_figure(frame: pd.DataFrame) -> Figure:
    """Default rate by grade, sub_grade, term, purpose, state (top 20 by volume) and income band."""
    overall = float(frame["default"].mean())
    income = pd.cut(frame["annual_inc"], INCOME_BANDS, labels=INCOME_LABELS, right=False)
    panels: list[tuple[str, pd.DataFrame]] = [
        ("grade", default_rates(frame, "grade").sort_index()),
        ("sub_grade", default_rates(frame, "sub_grade").sort_index()),
        ("term (months)", default_rates(frame, "term").sort_index()),
        ("purpose", default_rates(frame, "purpose")),
        ("state (20 largest)", default_rates(frame, "addr_state", top=20)),
        ("annual income", default_rates(frame, income).sort_index()),
    ]
    fig = Figure(figsize=(15, 9), layout="constrained")
    fig.suptitle(f"Default rate by segment ({len(frame):,} terminal loans; bar labels = loans)")
    for ax, (title, table) in zip(fig.subplots(2, 3).flat, panels, strict=True):
        _bars(ax, table, title, overall)
    return fig


def correlation_figure(frame: pd.DataFrame) -> Figure:
    """Spearman correlations of the main application fields, sub_grade's rank and default."""
    data = (
        frame[CORRELATED]
        .astype(float)
        .assign(
            sub_grade=frame["sub_grade"].map(
                lambda s: "ABCDEFG".index(s[0]) * 5 + int(s[1]) if isinstance(s, str) else np.nan
            ),
            default=frame["default"].astype(float),
        )
    )
    corr = data.corr(method="spearman")
    fig = Figure(figsize=(8, 7), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(corr.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(corr)), corr.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(corr)), corr.columns, fontsize=8)
    for (i, j), value in np.ndenumerate(corr.to_numpy()):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6)
    ax.set_title("Rank correlations (Spearman)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def performance_figure(scored: list[Scored], network: str) -> Figure:
    """ROC and PR curves for each model on validation and test; the network's calibration."""
    fig = Figure(figsize=(15, 9), layout="constrained")
    axes = fig.subplots(2, 3)
    for row, part in enumerate(("valid", "test")):
        roc_ax, pr_ax, cal_ax = axes[row]
        for s in (s for s in scored if s.part == part):
            fpr, tpr, _ = roc_curve(s.y, s.p)
            precision, recall, _ = precision_recall_curve(s.y, s.p)
            roc_ax.plot(
                fpr, tpr, lw=1.5 if s.model == network else 1, label=f"{s.model} AUC {auc(s.y, s.p):.3f}"
            )
            pr_ax.plot(recall, precision, lw=1.5 if s.model == network else 1, label=s.model)
            if s.model == network:
                predicted, observed, _ = calibration_bins(s.y, s.p)
                cal_ax.plot(predicted, observed, "o-", label=network)
                pr_ax.axhline(s.y.mean(), color="grey", lw=0.8, ls=":", label=f"base rate {s.y.mean():.3f}")
        roc_ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        top = max((s.p.max() for s in scored if s.part == part), default=1.0)
        cal_ax.plot([0, top], [0, top], color="grey", lw=0.8, ls=":", label="perfect")
        for ax, title, xl, yl in (
            (roc_ax, "ROC", "false positive rate", "true positive rate"),
            (pr_ax, "precision-recall (default = positive)", "recall", "precision"),
            (cal_ax, "calibration (deciles)", "mean predicted", "observed default rate"),
        ):
            ax.set_title(f"{title}: {part}", fontsize=10)
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
            ax.legend(fontsize=7)
    return fig


def threshold_figure(
    y: np.ndarray, p: np.ndarray, amount: np.ndarray, thresholds: Thresholds, costs: Costs
) -> Figure:
    """The precision/recall trade-off on validation, zoomed around the chosen decline threshold."""
    curve = tradeoff(y, p, amount, costs)
    t = curve["threshold"]
    low, high = max(0.0, thresholds.decline * 0.4), min(1.0, thresholds.decline * 2.0 + 0.02)
    keep = (t >= low) & (t <= high)
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    for name in ("precision", "recall", "decline_rate"):
        left.plot(t[keep], curve[name][keep], label=name.replace("_", " "))
    right.plot(t[keep], curve["expected_loss"][keep] * 100, color="#C44E52")
    for ax in (left, right):
        ax.axvline(
            thresholds.decline, color="black", ls="--", lw=1, label=f"decline >= {thresholds.decline:.3f}"
        )
        ax.axvline(thresholds.review, color="grey", ls=":", lw=1, label=f"review >= {thresholds.review:.3f}")
        ax.set_xlabel("threshold on default probability")
        ax.legend(fontsize=7)
    left.set_title(
        f"Validation: trade-off around the threshold (objective: {thresholds.objective})", fontsize=10
    )
    right.set_title(
        f"Expected loss, % of amount (LGD {costs.loss_given_default:.0%}, margin {costs.margin:.0%})",
        fontsize=10,
    )
    return fig


def permutation_importance(
    probability: Callable[[Features], np.ndarray], features: Features, y: np.ndarray, seed: int = 0
) -> pd.Series:
    """Validation AUC lost when one input column is shuffled (bigger = relied on more)."""
    rng = np.random.default_rng(seed)
    base = auc(y, probability(features))
    drops = {}
    for j, name in enumerate(features.names):
        numeric = features.numeric.copy()
        numeric[:, j] = rng.permutation(numeric[:, j])
        drops[name] = base - auc(
            y, probability(Features(numeric, features.codes, features.names, features.categorical))
        )
    for j, name in enumerate(features.categorical):
        codes = features.codes.copy()
        codes[:, j] = rng.permutation(codes[:, j])
        drops[f"{name} (embedding)"] = base - auc(
            y, probability(Features(features.numeric, codes, features.names, features.categorical))
        )
    return pd.Series(drops).sort_values(ascending=False)


def importance_figure(importance: pd.Series, top: int = 20) -> Figure:
    shown = importance.head(top)[::-1]
    fig = Figure(figsize=(8, 6), layout="constrained")
    ax = fig.subplots()
    ax.barh(shown.index, shown.to_numpy(), color="#55A868")
    ax.set_xlabel("validation AUC lost when shuffled")
    ax.set_title(f"What the network relies on most (top {len(shown)})")
    ax.tick_params(axis="y", labelsize=8)
    return fig


def run_report(
    prepared: Prepared, scorer: Scorer, scored: list[Scored], costs: Costs, seed: int = 0
) -> tuple[dict[str, Figure], dict[str, pd.DataFrame]]:
    """Every figure of one training run, and the importance table; the data figures cover all its loans."""
    everything = pd.concat([part.frame for part in prepared.parts().values()], ignore_index=True)
    valid = prepared.valid
    importance = permutation_importance(scorer.network.probability, valid.features, valid.y, seed)
    p_valid = scorer.network.probability(valid.features)
    figures = {
        "data": data_figure(everything),
        "correlations": correlation_figure(everything),
        "performance": performance_figure(scored, NETWORK),
        "threshold": threshold_figure(valid.y, p_valid, valid.amount, scorer.thresholds, costs),
        "importance": importance_figure(importance),
    }
    title = "network: validation AUC lost when one input is shuffled (correlated inputs share the credit)"
    return figures, {title: importance.head(20).to_frame("auc_drop")}


def write(directory: Path, figures: dict[str, Figure], tables: dict[str, pd.DataFrame], title: str) -> Path:
    """Save each figure as PNG and one HTML page with every figure inline and the tables; return the page."""
    directory.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for name, table in tables.items():
        parts.append(
            f"<h2>{html.escape(name)}</h2>{table.to_html(float_format=lambda v: f'{v:.4f}', border=0)}"
        )
    for name, fig in figures.items():
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=90)
        encoded = base64.b64encode(path.read_bytes()).decode()
        parts.append(f'<h2>{html.escape(name)}</h2><img src="data:image/png;base64,{encoded}">')
    page = directory / "report.html"
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{padding:2px 8px}img{max-width:100%}"
    )
    page.write_text(
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><style>{style}</style>"
        + "".join(parts)
    )
    return page
