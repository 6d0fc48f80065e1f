"""The PNG plots of docs/benchmarks.md, drawn from one run's results dictionary.

Split out of `report` (which writes the page): each plot reads only the JSON
the run wrote, and matplotlib is imported when a plot is drawn, not before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import Json


def _figure(width: float = 7.0, height: float = 3.6) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plots(r: Json, directory: Path) -> dict[str, str]:
    """Write the PNGs; return {name: file name}."""
    directory.mkdir(parents=True, exist_ok=True)
    s1, km, q = r["stage1"], r["kmeans"], r["quality"]
    out: dict[str, str] = {}
    fig, ax = _figure()
    bars = {
        "needletail parse-only": s1["parse_only_reads_per_s"],
        "VectorPipe reader only": s1["reader_only_reads_per_s"],
        "VectorPipe reader + 4-mer": s1["etl_reads_per_s"],
        "seed-style Biopython": s1["seed_baseline_reads_per_s"],
    }
    ax.barh(list(bars), list(bars.values()), color=["#9ecae9", "#9ecae9", "#4c78a8", "#e45756"])
    ax.set_xscale("log")
    ax.set_xlabel("reads per second, one core (log scale)")
    ax.invert_yaxis()
    _save(fig, directory / "stage1.png")
    out["stage1"] = "stage1.png"
    fig, ax = _figure()
    ks = s1["etl_by_k_reads_per_s"]
    ax.plot([int(k) for k in ks], list(ks.values()), marker="o", color="#4c78a8")
    ax.set_xlabel("k")
    ax.set_ylabel("reads per second")
    ax.set_yscale("log")
    _save(fig, directory / "stage1_k.png")
    out["stage1_k"] = "stage1_k.png"
    fig, ax = _figure()
    bars = {
        "memory floor (numpy, 1 thread)": km["memory_floor_ms"],
        "VectorPipe, 1 thread": km["kmeans_1thread_ms_per_iter"],
        f"VectorPipe, {km['kmeans_threads']} threads": km["kmeans_ms_per_iter"],
        "scikit-learn": km["sklearn_ms_per_iter"],
        "faiss-cpu": km["faiss_ms_per_iter"],
    }
    ax.barh(
        list(bars),
        list(bars.values()),
        color=["#bab0ac", "#4c78a8", "#4c78a8", "#f58518", "#54a24b"],
    )
    ax.set_xlabel("ms per Lloyd iteration (lower is better)")
    ax.invert_yaxis()
    _save(fig, directory / "kmeans.png")
    out["kmeans"] = "kmeans.png"
    fig, ax = _figure(7.0, 5.0)
    labels = [row["method"] for row in q["short"]]
    ys = range(len(labels))
    ax.barh([y - 0.2 for y in ys], [row["ari"] for row in q["short"]], 0.4, label="150 bp (ART)")
    ax.barh([y + 0.2 for y in ys], [row["ari"] for row in q["long"]], 0.4, label="1 kb")
    ax.set_yticks(list(ys), labels, fontsize=7)
    ax.set_xlabel("ARI against the true genome (higher is better)")
    ax.invert_yaxis()
    ax.legend(frameon=False, loc="lower right")
    _save(fig, directory / "quality.png")
    out["quality"] = "quality.png"
    return out
