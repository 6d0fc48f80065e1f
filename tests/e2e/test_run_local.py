"""`vectorpipe run` end to end on the bundled sample data: local Ray, real mpirun, report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.ray, pytest.mark.mpi]

ROOT = Path(__file__).resolve().parents[2]
VECTORPIPE = [sys.executable, "-m", "vectorpipe_workloads"]


def pipeline_file(tmp_path: Path, data: Path, **embedding: object) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "demo-pipeline.yaml").read_text())
    doc["spec"]["input"]["uri"] = str(data) + "/"
    doc["spec"]["output"]["uri"] = str(tmp_path / "out") + "/"
    doc["spec"]["embedding"].update(embedding)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VECTORPIPE, *args], capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_demo_pipeline_runs_both_stages_and_writes_the_report(tmp_path: Path) -> None:
    result = run(["run", str(pipeline_file(tmp_path, ROOT / "examples" / "data"))])
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out"
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows"] == 15000
    assert len(manifest["shards"]) == 4
    metrics = json.loads((out / "clustering" / "metrics.json").read_text())
    assert metrics["clusters"] == 3
    assert metrics["ranks"] == 2
    assert (out / "clustering" / "centroids.parquet").exists()
    assert (out / "clustering" / "_SUCCESS").exists()
    assert sorted(p.name for p in (out / "clustering" / "assignments").glob("part-*.parquet")) == [
        f"part-{i:05d}.parquet" for i in range(4)
    ]
    html = (out / "report" / "index.html").read_text()
    assert "ARI" in html
    assert "results:" in result.stdout
    assert "ARI" in result.stdout


@pytest.mark.faults
def test_invalid_pipeline_is_refused_with_the_field_named(tmp_path: Path) -> None:
    result = run(["run", str(pipeline_file(tmp_path, ROOT / "examples" / "data", k=12))])
    assert result.returncode == 2
    assert "kmer embeddings need 2 <= k <= 8" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.faults
def test_corrupt_input_names_file_and_record_and_stops_before_stage_two(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(ROOT / "examples" / "data" / "sample_c.fasta", data / "a.fasta")
    (data / "b.fastq").write_text("@r1\nACGT\n+\nIIII\n@r2\nACGTACGT\n+\nIII\n")
    result = run(["run", str(pipeline_file(tmp_path, data))])
    assert result.returncode == 3, result.stdout + result.stderr
    assert "b.fastq" in result.stderr
    assert "record 2" in result.stderr
    assert not (tmp_path / "out" / "_manifest.json").exists()
    assert not (tmp_path / "out" / "clustering" / "metrics.json").exists()
