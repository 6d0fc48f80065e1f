"""The report's HTML: one self-contained page with the plots inlined as base64 PNGs.

`render_html` lays out the headline cards, the cluster table, the projection,
the run summary with its per-stage timings, the input files and the raw
`metrics.json`; `_labels_section` adds the scores and the cluster × source table
when labels were given. The page has its own CSS and loads nothing from outside.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from vectorpipe_workloads.manifest import Manifest
from vectorpipe_workloads.report.data import MAX_TABLE_ROWS, Centroids, Scores
from vectorpipe_workloads.report.text import (
    _bar,
    _e,
    _img,
    _int,
    _num,
    describe_embedding,
    human_bytes,
)

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
