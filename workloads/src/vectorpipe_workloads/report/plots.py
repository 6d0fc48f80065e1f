"""The report's PNGs: cluster sizes, the 2-D projection and inertia per iteration.

Plots use matplotlib's Agg canvas directly, never pyplot, so the report keeps no
global state and works without a display; matplotlib is imported inside the
functions, so importing the report does not load it. PNGs are written without a
software tag, so the same run gives the same bytes whatever matplotlib made them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from vectorpipe_workloads.report.data import F64, I64, MAX_BARS, Centroids


def cluster_colours(k: int) -> list[str]:
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if k <= 10:
        cmap = colormaps["tab10"]
        return [to_hex(cmap(i)) for i in range(k)]
    if k <= 20:
        cmap = colormaps["tab20"]
        return [to_hex(cmap(i)) for i in range(k)]
    cmap = colormaps["turbo"]
    return [to_hex(cmap(i / max(k - 1, 1))) for i in range(k)]


def _new_figure(width: float = 7.2, height: float = 4.2) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    # Fixed margins (in inches, so every figure height gets the same room):
    # constrained layout measures every tick label and doubles the drawing time.
    fig.subplots_adjust(
        left=0.95 / width, right=1 - 0.2 / width, bottom=0.6 / height, top=1 - 0.4 / height
    )
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    # No software tag: the same run gives the same bytes whatever matplotlib made them.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _style(ax: Any) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(True, axis="y", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def plot_sizes(c: Centroids, colours: Sequence[str]) -> bytes:
    fig = _new_figure()
    ax = fig.add_subplot()
    _style(ax)
    k = len(c.ids)
    if k <= MAX_BARS:
        labels = [str(int(i)) for i in c.ids]
        bars = ax.bar(labels, c.sizes, color=list(colours), edgecolor="white")
        if k <= 20:
            ax.bar_label(bars, labels=[f"{int(s):,}" for s in c.sizes], padding=2, fontsize=8)
        ax.set_xlabel("cluster")
    else:
        ax.bar(np.arange(1, k + 1), np.sort(c.sizes)[::-1], width=1.0, color="#4c78a8")
        ax.set_xlabel("clusters, largest first")
    ax.set_ylabel("rows")
    ax.set_title("Cluster sizes", loc="left", fontweight="bold")
    return _png(fig)


def plot_projection(
    points: F64,
    clusters: I64,
    centres: F64,
    c: Centroids,
    colours: Sequence[str],
    explained: tuple[float, float],
    truth: Sequence[str | None] | None = None,
) -> bytes:
    """The sample coloured by cluster; with labels, a second panel coloured by true source."""
    fig = _new_figure(12.0 if truth is not None else 7.2, 5.4)
    if truth is not None:
        fig.subplots_adjust(wspace=0.18)
    ax = fig.add_subplot(1, 2 if truth is not None else 1, 1)
    index = {int(cid): i for i, cid in enumerate(c.ids)}
    point_colours = [colours[index.get(int(cl), 0)] if colours else "#4c78a8" for cl in clusters]
    _scatter(ax, points, point_colours, explained)
    if len(centres):
        ax.scatter(
            centres[:, 0],
            centres[:, 1],
            s=160,
            marker="X",
            c=list(colours),
            edgecolors="black",
            linewidths=1.2,
            zorder=3,
        )
        if len(centres) <= 30:
            for (x, y), cid in zip(centres, c.ids, strict=True):
                ax.annotate(
                    str(int(cid)),
                    (x, y),
                    xytext=(6, 6),
                    textcoords="offset points",
                    fontsize=9,
                    fontweight="bold",
                )
    ax.set_title(
        f"PCA of {len(points):,} sampled vectors, by cluster (× = centroid)",
        loc="left",
        fontweight="bold",
    )
    if truth is not None:
        right = fig.add_subplot(1, 2, 2, sharex=ax, sharey=ax)
        sources = sorted({t for t in truth if t is not None})
        palette = source_colours(len(sources))
        colour_of = dict(zip(sources, palette, strict=True))
        _scatter(
            right,
            points,
            [colour_of.get(t, "#c7c9cc") if t else "#c7c9cc" for t in truth],
            explained,
        )
        right.set_ylabel("")
        handles = [
            right.scatter([], [], s=30, color=colour_of[src], label=src) for src in sources[:20]
        ]
        if any(t is None for t in truth):
            handles.append(right.scatter([], [], s=30, color="#c7c9cc", label="no label"))
        right.legend(handles=handles, loc="best", fontsize=8, frameon=True, framealpha=0.85)
        right.set_title("The same points, by true source", loc="left", fontweight="bold")
    return _png(fig)


def _scatter(ax: Any, points: F64, colours: Sequence[str], explained: tuple[float, float]) -> None:
    _style(ax)
    ax.grid(True, axis="both", color="#f0f1f3", linewidth=0.8)
    ax.scatter(
        points[:, 0],
        points[:, 1],
        s=6.0 if len(points) > 2000 else 12.0,
        c=list(colours),
        alpha=0.55,
        linewidths=0,
        rasterized=True,
    )
    ax.set_xlabel(f"PC1 ({explained[0] * 100:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({explained[1] * 100:.1f}% of variance)")


def source_colours(n: int) -> list[str]:
    # Its own palette (Dark2, not tab10): source i has nothing to do with cluster i.
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["Dark2"] if n <= 8 else colormaps["turbo"]
    return [to_hex(cmap(i if n <= 8 else i / max(n - 1, 1))) for i in range(n)]


def plot_inertia(
    inertia: Sequence[float], converged: bool | None, iterations: int | None = None
) -> bytes:
    fig = _new_figure(7.2, 3.6)
    ax = fig.add_subplot()
    _style(ax)
    if inertia:
        # One more value than iterations means the first is the initial
        # centroids' inertia (before any update): number the axis from 0 then.
        first = 0 if iterations is not None and len(inertia) == iterations + 1 else 1
        xs = np.arange(first, first + len(inertia))
        ax.plot(xs, inertia, marker="o", markersize=3.5, color="#4c78a8", linewidth=1.6)
        positive = [v for v in inertia if v > 0]
        if positive and len(positive) == len(inertia) and max(positive) / min(positive) > 100:
            ax.set_yscale("log")
        ax.set_xlabel("iteration (0: initial centroids)" if first == 0 else "iteration")
        if len(inertia) <= 20:
            ax.set_xticks(xs)
        if converged:
            ax.annotate(
                "converged",
                (xs[-1], inertia[-1]),
                xytext=(-8, 12),
                textcoords="offset points",
                ha="right",
                fontsize=9,
                color="#166534",
            )
    else:
        ax.text(0.5, 0.5, "no inertia recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("inertia (sum of squared distances)")
    ax.set_title("Inertia per iteration", loc="left", fontweight="bold")
    return _png(fig)
