"""The run report: one self-contained HTML page (plus its PNGs) that shows what a finished run found.

`write_report` reads a run the way stage 2 does, through the manifest (so only
committed shards count), plus what the k-means program wrote in `<output>/clustering/`:
`centroids.parquet`, `metrics.json` and `assignments/part-NNNNN.parquet`. It
draws the cluster sizes, a 2-D PCA projection of a seeded sample of the vectors
with the centroids marked, and the inertia per iteration, and writes them with
`index.html` under `<output>/report/` through `Store`, so an s3:// run gets its
report in the bucket. Given the true source of each read (the bundled demo data
ships them), it also scores the clustering: adjusted Rand index, NMI, purity
and a cluster × source table. Plots use matplotlib's Agg canvas directly, never
pyplot, so the report keeps no global state and works without a display.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from vectorpipe_workloads.manifest import Manifest, clustering_uri, read_manifest
from vectorpipe_workloads.shards import embedding_matrix, read_shard
from vectorpipe_workloads.storage import Store, join

REPORT_DIR = "report"
CENTROIDS_NAME = "centroids.parquet"
METRICS_NAME = "metrics.json"
ASSIGNMENTS_DIR = "assignments"
# Past these many clusters a per-cluster bar chart or table stops being readable.
MAX_BARS = 50
MAX_TABLE_ROWS = 200

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ReportResult:
    """Where the report went and, when labels were given, how well the clusters match them."""

    uri: str  # the report's index.html
    files: list[str]
    ari: float | None = None
    nmi: float | None = None
    purity: float | None = None
    labelled_rows: int = 0


@dataclass(frozen=True)
class Centroids:
    ids: I64
    sizes: I64
    vectors: F32


@dataclass(frozen=True)
class Sample:
    """Sampled rows of a run: their vectors, assigned clusters and read ids."""

    vectors: F32
    clusters: I64
    read_ids: list[str]


@dataclass(frozen=True)
class Scores:
    ari: float | None
    nmi: float | None
    purity: float | None
    labelled: int
    sources: list[str] = field(default_factory=list)
    # contingency[i, j]: labelled rows of cluster cluster_ids[i] whose true source is sources[j]
    cluster_ids: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    contingency: I64 = field(default_factory=lambda: np.zeros((0, 0), np.int64))

    def row_of(self, cluster: int) -> int | None:
        pos = int(np.searchsorted(self.cluster_ids, cluster))
        found = pos < len(self.cluster_ids) and int(self.cluster_ids[pos]) == cluster
        return pos if found else None


# -- reading a finished run --------------------------------------------------


def _read_parquet(store: Store, uri: str, columns: list[str] | None = None) -> pa.Table:
    import pyarrow.parquet as pq

    with store.local_copy(uri) as path:
        return pq.read_table(path, columns=columns, memory_map=False)


def read_centroids(store: Store, output_uri: str) -> Centroids:
    table = _read_parquet(store, join(output_uri, CENTROIDS_NAME))
    ids = np.asarray(table.column("cluster").to_numpy(), dtype=np.int64)
    sizes = np.asarray(table.column("size").to_numpy(), dtype=np.int64)
    vectors = embedding_matrix(table.select(["centroid"]).rename_columns(["embedding"]))
    order = np.argsort(ids, kind="stable")
    return Centroids(ids[order], sizes[order], vectors[order])


def read_metrics(store: Store, output_uri: str) -> dict[str, Any]:
    uri = join(output_uri, METRICS_NAME)
    if not store.exists(uri):
        return {}
    raw = json.loads(store.read_bytes(uri))
    return raw if isinstance(raw, dict) else {}


def assignment_parts(store: Store, output_uri: str) -> list[str]:
    prefix = join(output_uri, ASSIGNMENTS_DIR)
    parts = [
        u
        for u in store.list_prefix(prefix)
        if u.rsplit("/", 1)[-1].startswith("part-") and u.endswith(".parquet")
    ]
    return sorted(parts)


def read_assignments(store: Store, parts: Sequence[str]) -> list[pa.Table]:
    return [_read_parquet(store, u, columns=["read_id", "cluster"]) for u in parts]


# -- sampling and projection -------------------------------------------------


def sample_vectors(
    store: Store,
    output_uri: str,
    manifest: Manifest,
    n: int,
    seed: int,
    assignments: Sequence[pa.Table],
    centroids: Centroids,
) -> Sample:
    """A seeded random sample of the run's vectors and the cluster each was assigned to."""
    total = manifest.rows
    rng = np.random.default_rng(seed)
    if total <= n:
        chosen = np.arange(total, dtype=np.int64)
    else:
        chosen = np.sort(rng.choice(total, size=n, replace=False)).astype(np.int64)
    # Assignments are sharded like the input; when every part lines up with its
    # shard the cluster of a row is found by position, which is exact even if
    # read ids repeat across input files. Otherwise fall back to the read id.
    aligned = len(assignments) == len(manifest.shards) and all(
        t.num_rows == s.rows for t, s in zip(assignments, manifest.shards, strict=True)
    )
    by_id: dict[str, int] | None = None
    if not aligned and assignments:
        by_id = {}
        for t in assignments:
            by_id.update(
                zip(t.column("read_id").to_pylist(), t.column("cluster").to_pylist(), strict=True)
            )
    vectors: list[F32] = []
    clusters: list[I64] = []
    read_ids: list[str] = []
    start = 0
    for j, shard in enumerate(manifest.shards):
        lo = int(np.searchsorted(chosen, start))
        hi = int(np.searchsorted(chosen, start + shard.rows))
        local = chosen[lo:hi] - start
        start += shard.rows
        if local.size == 0:
            continue
        table = read_shard(store, output_uri, shard, columns=["read_id", "embedding"]).take(local)
        vecs = embedding_matrix(table)
        ids = table.column("read_id").to_pylist()
        if aligned:
            assigned = assignments[j].column("cluster").take(local).to_numpy()
            cl = np.asarray(assigned, dtype=np.int64)
        elif by_id is not None:
            cl = np.array([by_id.get(r, -1) for r in ids], dtype=np.int64)
        else:
            cl = np.full(len(local), -1, dtype=np.int64)
        missing = cl < 0
        if missing.any():
            # A row the program did not assign (or no assignments at all): place
            # it at its nearest centroid, which is what k-means would do.
            cl[missing] = nearest(vecs[missing], centroids)
        vectors.append(vecs)
        clusters.append(cl)
        read_ids.extend(ids)
    if not vectors:
        dim = centroids.vectors.shape[1] if centroids.vectors.ndim == 2 else manifest.dim
        return Sample(np.zeros((0, dim), np.float32), np.zeros(0, np.int64), [])
    return Sample(np.concatenate(vectors), np.concatenate(clusters), read_ids)


def nearest(vectors: F32, centroids: Centroids) -> I64:
    if len(centroids.ids) == 0:
        return np.zeros(len(vectors), np.int64)
    x = vectors.astype(np.float64)
    c = centroids.vectors.astype(np.float64)
    d = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
    return np.asarray(centroids.ids[np.argmin(d, axis=1)], dtype=np.int64)


def pca_2d(sample: F32, extra: F32) -> tuple[F64, F64, tuple[float, float]]:
    """Project `sample` and `extra` (the centroids) on the sample's first two principal axes."""
    x = sample.astype(np.float64)
    if len(x) < 2:
        return np.zeros((len(x), 2)), np.zeros((len(extra), 2)), (0.0, 0.0)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = np.zeros((2, x.shape[1]))
    axes[: min(2, len(vt))] = vt[:2]
    var = s**2
    share = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    explained = (
        float(share[0]) if len(share) > 0 else 0.0,
        float(share[1]) if len(share) > 1 else 0.0,
    )
    return (x - mean) @ axes.T, (extra.astype(np.float64) - mean) @ axes.T, explained


# -- scoring against labels --------------------------------------------------


def score(labels: dict[str, str], assignments: Sequence[pa.Table], cluster_ids: I64) -> Scores:
    """ARI, NMI, purity and the cluster × source table over the rows that have a label."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    if not assignments or not labels:
        return Scores(None, None, None, 0)
    truth = pa.table(
        {
            "read_id": pa.array(list(labels.keys()), pa.string()),
            "source": pa.array(list(labels.values()), pa.string()),
        }
    )
    assigned = pa.concat_tables([t.select(["read_id", "cluster"]) for t in assignments])
    # A hash join in Arrow: the run can be far larger than a Python dict loop likes.
    joined = assigned.join(truth, keys="read_id", join_type="inner")
    if joined.num_rows == 0:
        return Scores(None, None, None, 0)
    clusters = np.asarray(joined.column("cluster").to_numpy(), dtype=np.int64)
    encoded = joined.column("source").combine_chunks().dictionary_encode()
    sources = [str(s) for s in encoded.dictionary.to_pylist()]
    codes = np.asarray(encoded.indices.to_numpy(), dtype=np.int64)
    order = np.argsort(sources)
    remap = np.empty_like(order)
    remap[order] = np.arange(len(order))
    codes = remap[codes]
    sources = [sources[i] for i in order]

    ids = np.union1d(cluster_ids, np.unique(clusters))
    rows = np.searchsorted(ids, clusters)
    table = np.zeros((len(ids), len(sources)), np.int64)
    np.add.at(table, (rows, codes), 1)
    n = int(joined.num_rows)
    ari = float(adjusted_rand_score(codes, clusters)) if n >= 2 else None
    nmi = float(normalized_mutual_info_score(codes, clusters)) if n >= 2 else None
    purity = float(table.max(axis=1).sum() / n)
    return Scores(ari, nmi, purity, n, sources, ids, table)


# -- plots -------------------------------------------------------------------


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


# -- the page ----------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _int(value: object) -> str:
    try:
        return f"{int(value):,}"  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return _e(value) if value is not None else "–"


def _num(value: object, fmt: str = ".6g") -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else _e(value)
    if isinstance(value, int | float):
        return format(value, fmt)
    return _e(value)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"


def describe_embedding(e: dict[str, Any]) -> str:
    method = str(e.get("method", "?"))
    parts = [method]
    if "k" in e:
        parts.append(f"k={e['k']}")
    if method == "kmer" and e.get("canonical"):
        parts.append("canonical")
    if e.get("transform") not in (None, "none"):
        parts.append(str(e["transform"]))
    for key in ("dim", "sketch_size", "sketchSize"):
        if e.get(key) is not None and method != "kmer":
            parts.append(f"{key}={e[key]}")
    abundance = e.get("abundance")
    if isinstance(abundance, dict) and abundance.get("enabled"):
        parts.append(f"+ abundance (k={abundance.get('k', '?')})")
    return " ".join(parts)


def _img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}"><figcaption>{_e(name)}</figcaption></figure>'


def _bar(share: float, colour: str = "#4c78a8") -> str:
    pct = max(0.0, min(1.0, share)) * 100
    return f'<div class="bar"><span style="width:{pct:.1f}%;background:{_e(colour)}"></span></div>'


_SUB = ' class="sub"'
_CSS = """
:root { --fg:#1f2937; --muted:#6b7280; --line:#e5e7eb; --card:#f9fafb; --accent:#4c78a8; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:#fff; }
main { max-width: 1080px; margin: 0 auto; padding: 28px 24px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 36px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 20px; word-break: break-all; }
.cards { display:grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card .v { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .l { color: var(--muted); font-size: 13px; }
.grid2 { display:grid; grid-template-columns: 1fr 1fr; gap: 24px; align-items: start; }
@media (max-width: 820px) { .grid2 { grid-template-columns: 1fr; } }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: middle; }
th { font-weight: 600; color: var(--muted); font-size: 13px; }
td.n, th.n { text-align: right; }
figure { margin: 0 0 16px; }
figure img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 10px; }
figcaption { display: none; }
.bar { background: #eef2f7; border-radius: 4px; height: 10px; min-width: 120px; }
.bar span { display:block; height:100%; border-radius: 4px; }
.sw { display:inline-block; width: 12px; height: 12px; border-radius: 3px; margin-right: 6px; vertical-align: -1px; }
tr.sub td:first-child { padding-left: 26px; color: var(--muted); }
.note { color: var(--muted); font-size: 13px; }
.warn { background:#fff7ed; border:1px solid #fed7aa; border-radius:8px; padding:8px 12px; }
details { margin-top: 28px; } pre { background: var(--card); padding: 12px; border-radius: 8px; overflow:auto; font-size: 12px; }
"""


def render_html(
    *,
    title: str,
    output_uri: str,
    manifest: Manifest,
    metrics: dict[str, Any],
    centroids: Centroids,
    colours: Sequence[str],
    scores: Scores | None,
    images: dict[str, bytes],
    sampled: int,
    notes: Sequence[str],
) -> str:
    inertia = [float(v) for v in metrics.get("inertia", []) or []]
    final_inertia = inertia[-1] if inertia else None
    seconds = metrics.get("seconds", {}) or {}
    total_rows = int(centroids.sizes.sum())
    k = len(centroids.ids)
    iterations = metrics.get("iterations", len(inertia) or None)
    converged = metrics.get("converged")
    phase_sum = sum(
        float(v) for k, v in seconds.items() if k != "total" and isinstance(v, int | float)
    )
    total_seconds = float(manifest.seconds) + float(seconds.get("total", phase_sum) or 0.0)

    cards = [
        (_int(manifest.rows), "reads embedded"),
        (_int(k), "clusters"),
        (_int(iterations), "iterations" + (" (converged)" if converged else "")),
        (f"{total_seconds:,.1f} s", "embedding + clustering"),
    ]
    if scores is not None and scores.ari is not None:
        cards.append((f"{scores.ari:.3f}", "adjusted Rand index"))
        cards.append((_num(scores.nmi, ".3f"), "NMI"))
    card_html = "".join(
        f'<div class="card"><div class="v">{v}</div><div class="l">{_e(label)}</div></div>'
        for v, label in cards
    )

    summary = [
        ("Output", f"<code>{_e(output_uri)}</code>"),
        ("Rows", _int(manifest.rows)),
        ("Shards", f"{_int(len(manifest.shards))} × {_e(manifest.format)}"),
        ("Shard bytes", f"{_int(manifest.bytes)} ({human_bytes(manifest.bytes)})"),
        ("Input files", _int(len(manifest.sources))),
        ("Embedding", _e(describe_embedding(manifest.embedding))),
        ("Dimensions", _int(manifest.dim)),
        (
            "Method",
            f"{_e(metrics.get('method', 'k-means'))}, k = {_int(metrics.get('clusters', k))}",
        ),
        (
            "Iterations",
            f"{_int(iterations)}"
            + ("" if converged is None else " (converged)" if converged else " (not converged)"),
        ),
        ("Final inertia", _num(final_inertia)),
        ("MPI ranks", _int(metrics.get("ranks"))),
        ("ms per iteration", _num(metrics.get("ms_per_iteration"), ".2f")),
    ]
    if manifest.pipeline:
        summary.insert(0, ("Pipeline", _e(manifest.pipeline)))
    summary_html = "".join(f"<tr><th>{_e(a)}</th><td>{b}</td></tr>" for a, b in summary)

    # metrics.json is written with sorted keys; put the usual phases back in the order they run.
    usual = {name: i for i, name in enumerate(("read", "init", "iterate", "write"))}
    phases = sorted(
        (
            (str(name), float(value))
            for name, value in seconds.items()
            if name != "total" and isinstance(value, int | float) and not isinstance(value, bool)
        ),
        key=lambda item: (usual.get(item[0], len(usual)), item[0]),
    )
    stage2 = float(seconds.get("total", sum(v for _, v in phases)) or 0.0)
    # One row per stage, the k-means phases indented under theirs: a bar for
    # "total" next to its own parts would count the same seconds twice.
    stage_rows: list[tuple[str, float, bool]] = [
        ("Stage 1 · embedding on Ray", float(manifest.seconds), False),
        ("Stage 2 · k-means with MPI", stage2, False),
        *((name, value, True) for name, value in phases),
    ]
    longest = max((v for _, v, _ in stage_rows), default=0.0) or 1.0
    time_html = "".join(
        f"<tr{_SUB if sub else ''}><td>{_e(name)}</td><td class='n'>{value:,.3f}</td>"
        f"<td>{_bar(value / longest, '#9db4d0' if sub else '#4c78a8')}</td></tr>"
        for name, value, sub in stage_rows
    )
    time_html += f'<tr><th>Total</th><th class="n">{float(manifest.seconds) + stage2:,.3f}</th><th></th></tr>'

    majority: dict[int, tuple[str, float]] = {}
    if scores is not None and scores.labelled:
        for i in range(scores.contingency.shape[0]):
            row = scores.contingency[i]
            if row.sum():
                j = int(row.argmax())
                majority[i] = (scores.sources[j], float(row[j] / row.sum()))
    order = np.argsort(-centroids.sizes, kind="stable")[:MAX_TABLE_ROWS]
    cluster_rows = []
    for i in order:
        cid = int(centroids.ids[i])
        size = int(centroids.sizes[i])
        share = size / total_rows if total_rows else 0.0
        extra = ""
        if scores is not None and scores.labelled:
            idx = scores.row_of(cid)
            if idx is not None and idx in majority:
                src, frac = majority[idx]
                extra = f"<td>{_e(src)}</td><td class='n'>{frac * 100:.1f}%</td>"
            else:
                extra = "<td>–</td><td class='n'>–</td>"
        cluster_rows.append(
            f'<tr><td><span class="sw" style="background:{_e(colours[i])}"></span>{cid}</td>'
            f'<td class="n">{size:,}</td><td class="n">{share * 100:.1f}%</td>'
            f"<td>{_bar(share, colours[i])}</td>{extra}</tr>"
        )
    more = (
        f'<p class="note">Largest {MAX_TABLE_ROWS} of {k:,} clusters shown.</p>'
        if k > MAX_TABLE_ROWS
        else ""
    )
    extra_head = (
        "<th>majority source</th><th class='n'>of cluster</th>"
        if scores is not None and scores.labelled
        else ""
    )
    cluster_html = (
        "<table><tr><th>cluster</th><th class='n'>rows</th><th class='n'>share</th><th></th>"
        f"{extra_head}</tr>{''.join(cluster_rows)}</table>{more}"
    )

    labels_html = ""
    if scores is not None:
        labels_html = _labels_section(scores, centroids, colours)

    by_source = (
        " On the right, the same points coloured by the genome each read came from."
        if scores is not None
        else ""
    )
    notes_html = "".join(f'<p class="warn">{_e(n)}</p>' for n in notes)
    sources_html = "".join(
        f"<tr><td><code>{_e(s.uri)}</code></td><td class='n'>{s.records:,}</td>"
        f"<td class='n'>{human_bytes(s.bytes)}</td></tr>"
        for s in manifest.sources[:MAX_TABLE_ROWS]
    )
    metrics_json = _e(json.dumps(metrics, indent=2, sort_keys=True, default=str))

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body><main>
<h1>{_e(title)}</h1>
<p class="sub">{_e(output_uri)} · manifest written {_e(manifest.created)}</p>
{notes_html}
<div class="cards">{card_html}</div>

<h2>Clusters</h2>
<div class="grid2">
<div>{_img("cluster_sizes.png", images["cluster_sizes.png"], "bar chart of cluster sizes")}</div>
<div>{cluster_html}</div>
</div>

<h2>Where the vectors lie</h2>
{_img("projection.png", images["projection.png"], "2-D PCA projection coloured by cluster")}
<p class="note">A seeded random sample of {sampled:,} of {manifest.rows:,} vectors, projected on
their first two principal components; crosses are the centroids.{by_source}</p>
{labels_html}
<h2>Run</h2>
<div class="grid2">
<div><table>{summary_html}</table></div>
<div>
{_img("inertia.png", images["inertia.png"], "inertia per iteration")}
<table><tr><th>stage</th><th class="n">seconds</th><th></th></tr>{time_html}</table>
</div>
</div>

<h2>Input files</h2>
<table><tr><th>file</th><th class="n">reads</th><th class="n">size</th></tr>{sources_html}</table>

<details><summary>metrics.json</summary><pre>{metrics_json}</pre></details>
</main></body></html>
"""


def _labels_section(scores: Scores, centroids: Centroids, colours: Sequence[str]) -> str:
    if not scores.labelled:
        return (
            "<h2>Against the true sources</h2>"
            "<p class='warn'>Labels were given, but no assigned read id matched one.</p>"
        )
    ids = scores.cluster_ids
    colour_of = {int(c): colours[i] for i, c in enumerate(centroids.ids)}
    head = "".join(f"<th class='n'>{_e(s)}</th>" for s in scores.sources)
    body = []
    for i, cid in enumerate(ids):
        row = scores.contingency[i]
        total = int(row.sum())
        cells = []
        for v in row:
            share = v / total if total else 0.0
            cells.append(
                f"<td class='n' style='background:rgba(76,120,168,{share * 0.55:.3f})'>{int(v):,}</td>"
            )
        sw = colour_of.get(int(cid), "#9ca3af")
        body.append(
            f"<tr><td><span class='sw' style='background:{_e(sw)}'></span>{int(cid)}</td>"
            f"{''.join(cells)}<td class='n'>{total:,}</td></tr>"
        )
    totals = scores.contingency.sum(axis=0)
    body.append(
        "<tr><th>total</th>"
        + "".join(f"<th class='n'>{int(t):,}</th>" for t in totals)
        + f"<th class='n'>{scores.labelled:,}</th></tr>"
    )
    return f"""
<h2>Against the true sources</h2>
<div class="cards">
<div class="card"><div class="v">{_num(scores.ari, ".3f")}</div><div class="l">adjusted Rand index (1 = perfect, 0 = chance)</div></div>
<div class="card"><div class="v">{_num(scores.nmi, ".3f")}</div><div class="l">normalized mutual information</div></div>
<div class="card"><div class="v">{_num(scores.purity, ".3f")}</div><div class="l">purity</div></div>
<div class="card"><div class="v">{scores.labelled:,}</div><div class="l">labelled rows scored</div></div>
</div>
<p class="note">Rows: clusters; columns: the genome each read was simulated from; shading: share of the cluster.</p>
<table><tr><th>cluster</th>{head}<th class='n'>total</th></tr>{"".join(body)}</table>
"""


# -- entry point -------------------------------------------------------------


def write_report(
    output_uri: str,
    store: Store,
    *,
    labels: dict[str, str] | None = None,
    sample_rows: int = 5000,
    title: str = "",
    seed: int = 0,
) -> ReportResult:
    """Read a finished run under `output_uri` and write `<output>/report/` (index.html + PNGs)."""
    manifest = read_manifest(store, output_uri)
    clustering = clustering_uri(output_uri)
    centroids = read_centroids(store, clustering)
    metrics = read_metrics(store, clustering)
    parts = assignment_parts(store, clustering)
    assignments = read_assignments(store, parts)

    notes: list[str] = []
    assigned_rows = sum(t.num_rows for t in assignments)
    if not assignments:
        notes.append("No assignments found; the projection colours rows by nearest centroid.")
    elif assigned_rows != manifest.rows:
        notes.append(f"Assignments cover {assigned_rows:,} of {manifest.rows:,} rows.")
    if int(centroids.sizes.sum()) != manifest.rows:
        notes.append(
            f"Cluster sizes add up to {int(centroids.sizes.sum()):,}, "
            f"the manifest lists {manifest.rows:,} rows."
        )

    colours = cluster_colours(len(centroids.ids))
    sample = sample_vectors(store, output_uri, manifest, sample_rows, seed, assignments, centroids)
    points, centres, explained = pca_2d(sample.vectors, centroids.vectors)
    truth = [labels.get(r) for r in sample.read_ids] if labels else None

    scores: Scores | None = None
    if labels is not None:
        scores = score(labels, assignments, centroids.ids)

    images = {
        "cluster_sizes.png": plot_sizes(centroids, colours),
        "projection.png": plot_projection(
            points, sample.clusters, centres, centroids, colours, explained, truth
        ),
        "inertia.png": plot_inertia(
            [float(v) for v in metrics.get("inertia", []) or []],
            metrics.get("converged"),
            iterations if isinstance(iterations := metrics.get("iterations"), int) else None,
        ),
    }
    page = render_html(
        title=title or f"VectorPipe run · {manifest.pipeline or output_uri.rstrip('/')}",
        output_uri=output_uri,
        manifest=manifest,
        metrics=metrics,
        centroids=centroids,
        colours=colours,
        scores=scores,
        images=images,
        sampled=len(points),
        notes=notes,
    )
    report = join(output_uri, REPORT_DIR)
    files = []
    for name, data in images.items():
        uri = join(report, name)
        store.write_bytes(uri, data)
        files.append(uri)
    index = join(report, "index.html")
    # index.html last: once it is there, the PNGs it stands for are too.
    store.write_bytes(index, page.encode())
    files.append(index)
    return ReportResult(
        uri=index,
        files=files,
        ari=scores.ari if scores else None,
        nmi=scores.nmi if scores else None,
        purity=scores.purity if scores else None,
        labelled_rows=scores.labelled if scores else 0,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vectorpipe_workloads.report",
        description="Write <output>/report/index.html for a finished VectorPipe run.",
    )
    parser.add_argument("output", help="the run's output URI (path or s3://)")
    parser.add_argument("--labels", help="labels.tsv[.gz]: read_id<TAB>source, to score clusters")
    parser.add_argument("--sample-rows", type=int, default=5000, help="vectors in the projection")
    parser.add_argument("--title", default="", help="page title")
    args = parser.parse_args(argv)
    store = Store()
    labels = None
    if args.labels:
        from vectorpipe_workloads.sampledata import load_labels

        labels = load_labels(args.labels, store)
    result = write_report(
        args.output, store, labels=labels, sample_rows=args.sample_rows, title=args.title
    )
    print(result.uri)
    if result.ari is not None:
        print(
            f"ARI {result.ari:.3f}  NMI {_num(result.nmi, '.3f')}  ({result.labelled_rows:,} rows)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
