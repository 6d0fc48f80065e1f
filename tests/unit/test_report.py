"""The run report, against a finished run built by hand in tmp_path.

The fake run follows the stage-1 contract (shards + `_manifest.json`, written
with the real writers) and the stage-2 contract (`centroids.parquet`,
`metrics.json`, `assignments/part-NNNNN.parquet`) written here with pyarrow,
so the report is tested independently of the k-means program.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vectorpipe_workloads import report
from vectorpipe_workloads.etl.shard_writers import shard_bounds, write_parquet_shard
from vectorpipe_workloads.manifest import (
    Manifest,
    SourceInfo,
    clustering_uri,
    read_manifest,
    write_manifest,
)
from vectorpipe_workloads.shards import make_table, schema_description
from vectorpipe_workloads.storage import Store, join

SOURCES = ("M_leprae", "M_tuberculosis", "phage_lambda")
DIM = 8


@dataclass
class FakeRun:
    uri: str
    ids: list[str]
    labels: dict[str, str]
    clusters: np.ndarray
    inertia: list[float]
    rows: int
    shards: int


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def make_run(
    store: Store,
    uri: str,
    *,
    per_source: int = 400,
    shards: int = 3,
    assign: str = "truth",
    assignment_layout: str = "aligned",
    seed: int = 0,
) -> FakeRun:
    """A finished run: three well separated blobs, one per source, in shuffled order."""
    rng = np.random.default_rng(seed)
    k = len(SOURCES)
    centres = rng.normal(0, 5, size=(k, DIM))
    truth = np.repeat(np.arange(k), per_source)
    rng.shuffle(truth)
    n = len(truth)
    vectors = (centres[truth] + rng.normal(0, 0.3, size=(n, DIM))).astype(np.float32)
    ids = [f"read_{i:05d}" for i in range(n)]
    labels = {rid: SOURCES[t] for rid, t in zip(ids, truth, strict=True)}
    if assign == "truth":
        # Same partition as the labels, under different cluster numbers.
        clusters = ((truth + 1) % k).astype(np.int32)
    else:
        clusters = rng.integers(0, k, size=n).astype(np.int32)

    infos = []
    for j, (lo, hi) in enumerate(shard_bounds(n, shards)):
        table = make_table(ids[lo:hi], f"sample_{j}", vectors[lo:hi])
        infos.append(write_parquet_shard(store, uri, j, table))
    manifest = Manifest(
        format="parquet",
        dim=DIM,
        rows=n,
        embedding={"method": "kmer", "k": 4, "canonical": True, "transform": "none"},
        shards=infos,
        sources=[SourceInfo(f"/data/sample_{j}.fastq.gz", n // shards, 12345) for j in range(3)],
        schema=schema_description(DIM),
        pipeline="demo",
        seconds=4.25,
    )
    write_manifest(store, uri, manifest)

    cent = np.stack([vectors[clusters == c].mean(axis=0) for c in range(k)]).astype(np.float32)
    sizes = np.bincount(clusters, minlength=k).astype(np.int64)
    centroids = pa.table(
        {
            "cluster": pa.array(np.arange(k, dtype=np.int32)),
            "size": pa.array(sizes),
            "centroid": pa.FixedSizeListArray.from_arrays(
                pa.array(cent.reshape(-1), pa.float32()), DIM
            ),
        }
    )
    store.write_bytes(join(uri, "clustering/centroids.parquet"), _parquet_bytes(centroids))
    dist = np.linalg.norm(vectors - cent[clusters], axis=1).astype(np.float32)
    inertia = [5123.5, 1234.25, 987.125, 986.0]
    metrics = {
        "inertia": inertia,
        "iterations": len(inertia),
        "converged": True,
        "seconds": {"read": 0.5, "init": 0.25, "iterate": 1.5, "write": 0.125, "total": 2.375},
        "ranks": 2,
        "rows": n,
        "dim": DIM,
        "clusters": k,
        "ms_per_iteration": 375.0,
    }
    store.write_bytes(join(uri, "clustering/metrics.json"), json.dumps(metrics).encode())

    def part(lo: int, hi: int, order: np.ndarray | None = None) -> bytes:
        idx = np.arange(lo, hi) if order is None else order
        return _parquet_bytes(
            pa.table(
                {
                    "read_id": pa.array([ids[i] for i in idx], pa.string()),
                    "cluster": pa.array(clusters[idx], pa.int32()),
                    "distance": pa.array(dist[idx], pa.float32()),
                }
            )
        )

    if assignment_layout == "aligned":
        for j, (lo, hi) in enumerate(shard_bounds(n, shards)):
            store.write_bytes(
                join(uri, f"clustering/assignments/part-{j:05d}.parquet"), part(lo, hi)
            )
    elif assignment_layout == "shuffled":
        # One part in a different row order: only the read id can line rows up.
        order = rng.permutation(n)
        store.write_bytes(join(uri, "clustering/assignments/part-00000.parquet"), part(0, n, order))
    store.write_bytes(join(uri, "_SUCCESS"), b"")
    return FakeRun(uri, ids, labels, clusters, inertia, n, shards)


@pytest.fixture
def store() -> Store:
    return Store()


@dataclass
class Written:
    run: FakeRun
    result: report.ReportResult
    page: str


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Written:
    """One report over a run whose clusters are exactly the true sources (shared: plots are slow)."""
    store = Store()
    run = make_run(store, str(tmp_path_factory.mktemp("labelled") / "run"))
    result = report.write_report(run.uri, store, labels=run.labels, title="Demo <run>")
    return Written(run, result, store.read_bytes(result.uri).decode())


def _html(store: Store, result: report.ReportResult) -> str:
    return store.read_bytes(result.uri).decode()


def _parts(store: Store, uri: str) -> list[pa.Table]:
    return report.read_assignments(store, report.assignment_parts(store, clustering_uri(uri)))


def test_report_writes_page_and_valid_pngs(labelled: Written) -> None:
    out = Path(labelled.run.uri) / "report"
    assert labelled.result.uri == str(out / "index.html")
    assert labelled.result.files == [
        str(out / n) for n in ("cluster_sizes.png", "projection.png", "inertia.png", "index.html")
    ]
    for name in ("cluster_sizes.png", "projection.png", "inertia.png"):
        with Image.open(out / name) as img:
            img.verify()
        with Image.open(out / name) as img:
            assert img.format == "PNG"
            assert img.width > 300 and img.height > 200
    # With labels the projection gets a second panel, coloured by true source.
    with Image.open(out / "projection.png") as proj, Image.open(out / "inertia.png") as inertia:
        assert proj.width > 1.5 * inertia.width
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_html_is_self_contained_and_shows_the_numbers(labelled: Written) -> None:
    page, run = labelled.page, labelled.run
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Demo &lt;run&gt;</title>" in page  # escaped, never raw markup
    # All three plots inline; nothing fetched from elsewhere.
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 3
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "1,200" in page  # rows
    assert "3 × parquet" in page  # shards
    assert "kmer k=4 canonical" in page
    assert "<th>Dimensions</th><td>8</td>" in page
    assert "<th>Final inertia</th><td>986</td>" in page
    assert "k = 3" in page
    assert "4 (converged)" in page
    assert "4.250" in page  # stage 1 seconds
    assert "2.375" in page  # stage 2 total seconds
    assert "6.625" in page  # both stages
    assert "375.00" in page  # ms per iteration
    sizes = np.bincount(run.clusters, minlength=3)
    for s in sizes:
        assert f">{s:,}<" in page
        assert f"{s / run.rows * 100:.1f}%" in page


def test_labels_matching_clusters_score_perfectly(labelled: Written) -> None:
    result, page = labelled.result, labelled.page
    assert result.ari == pytest.approx(1.0)
    assert result.nmi == pytest.approx(1.0)
    assert result.purity == pytest.approx(1.0)
    assert result.labelled_rows == labelled.run.rows
    assert "Against the true sources" in page
    assert page.count(">1.000<") >= 3  # ARI, NMI, purity
    # Contingency: the header names every source; each cluster holds one source, 400 rows.
    header = re.search(r"<tr><th>cluster</th>(.*?)</tr>", page.split("Against the true")[1])
    assert header is not None
    assert all(s in header.group(1) for s in SOURCES)
    assert (
        "<th>total</th><th class='n'>400</th><th class='n'>400</th><th class='n'>400</th>" in page
    )


def test_random_clusters_score_near_zero(tmp_path: Path, store: Store) -> None:
    run = make_run(store, str(tmp_path / "run"), assign="random", per_source=1000)
    centroids = report.read_centroids(store, clustering_uri(run.uri))
    scores = report.score(run.labels, _parts(store, run.uri), centroids.ids)
    assert scores.labelled == run.rows
    assert scores.ari is not None and abs(scores.ari) < 0.02
    assert scores.nmi is not None and scores.nmi < 0.02
    assert scores.contingency.sum() == run.rows
    assert scores.contingency.shape == (3, 3)


def test_partial_labels_score_only_labelled_rows(tmp_path: Path, store: Store) -> None:
    run = make_run(store, str(tmp_path / "run"))
    some = dict(list(run.labels.items())[:500])
    some["not_in_the_run"] = "M_leprae"
    centroids = report.read_centroids(store, clustering_uri(run.uri))
    scores = report.score(some, _parts(store, run.uri), centroids.ids)
    assert scores.labelled == 500
    assert scores.ari == pytest.approx(1.0)


def test_labels_that_match_nothing_give_no_score(tmp_path: Path, store: Store) -> None:
    run = make_run(store, str(tmp_path / "run"))
    centroids = report.read_centroids(store, clustering_uri(run.uri))
    scores = report.score({"x": "y"}, _parts(store, run.uri), centroids.ids)
    assert scores.ari is None and scores.labelled == 0
    section = report._labels_section(scores, centroids, report.cluster_colours(3))
    assert "no assigned read id matched" in section


@pytest.mark.parametrize("layout", ["aligned", "shuffled", "missing"])
def test_projection_clusters_whatever_the_assignment_layout(
    tmp_path: Path, store: Store, layout: str
) -> None:
    run = make_run(store, str(tmp_path / "run"), assignment_layout=layout)
    manifest = read_manifest(store, run.uri)
    centroids = report.read_centroids(store, clustering_uri(run.uri))
    parts = _parts(store, run.uri)
    sample = report.sample_vectors(store, run.uri, manifest, 300, 0, parts, centroids)
    vectors, clusters = sample.vectors, sample.clusters
    assert vectors.shape == (300, DIM) and clusters.shape == (300,)
    assert len(sample.read_ids) == 300 and set(sample.read_ids) <= set(run.ids)
    # Whichever way the clusters were found, they must be the assigned ones: the
    # blobs are far apart, so the nearest centroid agrees with the assignment.
    assert np.array_equal(clusters, report.nearest(vectors, centroids))
    if layout == "missing":
        assert parts == []
        result = report.write_report(run.uri, store, labels=run.labels, sample_rows=300)
        assert result.ari is None
        assert "No assignments found" in _html(store, result)
    else:
        assert report.score(run.labels, parts, centroids.ids).ari == pytest.approx(1.0)


def test_sample_is_seeded_and_bounded(tmp_path: Path, store: Store) -> None:
    run = make_run(store, str(tmp_path / "run"))
    manifest = read_manifest(store, run.uri)
    centroids = report.read_centroids(store, clustering_uri(run.uri))
    parts = report.read_assignments(store, report.assignment_parts(store, clustering_uri(run.uri)))
    a = report.sample_vectors(store, run.uri, manifest, 100, 7, parts, centroids)
    b = report.sample_vectors(store, run.uri, manifest, 100, 7, parts, centroids)
    c = report.sample_vectors(store, run.uri, manifest, 100, 8, parts, centroids)
    everything = report.sample_vectors(store, run.uri, manifest, 10**6, 0, parts, centroids)
    assert np.array_equal(a.vectors, b.vectors) and a.read_ids == b.read_ids
    assert not np.array_equal(a.vectors, c.vectors)
    assert everything.vectors.shape == (run.rows, DIM)
    assert everything.read_ids == run.ids  # every row, in manifest order


def test_report_is_deterministic(labelled: Written, store: Store) -> None:
    again = report.write_report(
        labelled.run.uri, store, labels=labelled.run.labels, title="Demo <run>"
    )
    assert _html(store, again) == labelled.page


def test_many_clusters_stay_readable(tmp_path: Path, store: Store) -> None:
    """Past MAX_BARS clusters the chart is rank-size and the table is capped."""
    uri = str(tmp_path / "run")
    run = make_run(store, uri)
    k = report.MAX_TABLE_ROWS + 20
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 50, size=k).astype(np.int64)
    centroids = pa.table(
        {
            "cluster": pa.array(np.arange(k, dtype=np.int32)),
            "size": pa.array(sizes),
            "centroid": pa.FixedSizeListArray.from_arrays(
                pa.array(rng.normal(size=k * DIM).astype(np.float32)), DIM
            ),
        }
    )
    store.write_bytes(join(uri, "clustering/centroids.parquet"), _parquet_bytes(centroids))
    page = _html(store, report.write_report(run.uri, store))
    assert f"Largest {report.MAX_TABLE_ROWS} of {k:,} clusters shown" in page
    assert "Cluster sizes add up to" in page  # they no longer match the manifest


def test_report_without_metrics_or_labels(tmp_path: Path, store: Store) -> None:
    run = make_run(store, str(tmp_path / "run"), per_source=50)
    (tmp_path / "run" / "clustering" / "metrics.json").unlink()
    result = report.write_report(run.uri, store)
    assert (tmp_path / "run" / "report" / "inertia.png").stat().st_size > 1000
    page = _html(store, result)
    assert "<!DOCTYPE html>" in page and "150" in page
    assert result.ari is None and result.nmi is None and result.labelled_rows == 0
    assert "Against the true sources" not in page  # no labels, no score


def test_human_bytes_and_embedding_text() -> None:
    assert report.human_bytes(512) == "512 B"
    assert report.human_bytes(2048) == "2.0 KiB"
    assert report.human_bytes(5 * 1024**3) == "5.0 GiB"
    assert report.describe_embedding({"method": "kmer", "k": 5, "canonical": False}) == "kmer k=5"
    assert (
        report.describe_embedding({"method": "kmer", "k": 4, "canonical": True, "transform": "clr"})
        == "kmer k=4 canonical clr"
    )
    assert report.describe_embedding({"method": "hashed", "k": 15, "dim": 100}) == (
        "hashed k=15 dim=100"
    )
    on = {"method": "kmer", "k": 4, "canonical": True, "abundance": {"enabled": True, "k": 21}}
    assert report.describe_embedding(on) == "kmer k=4 canonical + abundance (k=21)"
    off = {**on, "abundance": {"enabled": False, "k": 21}}
    assert report.describe_embedding(off) == "kmer k=4 canonical"


def test_cli_writes_the_report_with_labels(
    tmp_path: Path, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    import gzip

    run = make_run(store, str(tmp_path / "run"))
    labels = tmp_path / "labels.tsv.gz"
    lines = "read_id\tsource\n" + "".join(f"{k}\t{v}\n" for k, v in run.labels.items())
    labels.write_bytes(gzip.compress(lines.encode()))
    assert report.main([run.uri, "--labels", str(labels), "--sample-rows", "200"]) == 0
    out = capsys.readouterr().out
    assert "index.html" in out and "ARI 1.000" in out


@pytest.mark.s3
def test_report_on_s3(s3: object) -> None:
    from tests.services.s3 import LocalS3

    assert isinstance(s3, LocalS3)
    s3.create_bucket("vp-report")
    store = Store()
    uri = "s3://vp-report/runs/r1/"
    run = make_run(store, uri, per_source=100)
    result = report.write_report(uri, store, labels=run.labels)
    assert result.uri == "s3://vp-report/runs/r1/report/index.html"
    listed = set(store.list_prefix("s3://vp-report/runs/r1/report"))
    assert {
        f"s3://vp-report/runs/r1/report/{n}"
        for n in ("index.html", "cluster_sizes.png", "projection.png", "inertia.png")
    } <= listed
    assert result.ari == pytest.approx(1.0)
    assert store.read_bytes(result.uri).startswith(b"<!DOCTYPE html>")
