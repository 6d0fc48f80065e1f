"""`bench.run --mode small` end to end: the harness still runs and writes a complete page.

Runs the same code as `make bench` on small inputs (real needletail,
Biopython, scikit-learn, faiss, mpirun, Ray, Lance, a real kube-apiserver
with the operator, and slurmrestd) into a temp dir, then checks the JSON
has every headline key as a finite number of the right sign and that
docs page and plots were written with each key on them. It never looks at
how fast anything was.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import HEADLINE_KEYS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.mpi,
    pytest.mark.k8s,
    pytest.mark.slurm,
    pytest.mark.ray,
]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-small")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--mode", "small", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_json_has_every_headline_key_as_a_finite_positive_number(small_run: Path) -> None:
    r = json.loads((small_run / "benchmarks.json").read_text())
    for key in HEADLINE_KEYS:
        value = r[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert math.isfinite(value) and value > 0, (key, value)
    assert r["cores"] >= 1
    assert r["blas_kernel"]
    assert len(r["load_average_start"]) == 3
    assert r["date"].endswith("Z")
    # Scores are probabilities-like: above 1 would mean the metric was misused.
    assert r["ari_short"] <= 1 and r["ari_long"] <= 1


def test_markdown_lists_every_key_and_the_plots_exist(small_run: Path) -> None:
    md = (small_run / "benchmarks.md").read_text()
    r = json.loads((small_run / "benchmarks.json").read_text())
    for key in HEADLINE_KEYS:
        assert f"`{key}`" in md, key
    images = sorted((small_run / "benchmarks").glob("*.png"))
    assert {p.name for p in images} >= {"stage1.png", "stage1_k.png", "kmeans.png", "quality.png"}
    for p in images:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
        assert f"benchmarks/{p.name}" in md
    assert r["machine"]["blas_kernel"] in md


def test_quality_rows_cover_every_method_for_both_read_lengths(small_run: Path) -> None:
    from bench.quality import METHODS

    q = json.loads((small_run / "benchmarks.json").read_text())["quality"]
    for length in ("short", "long"):
        assert [row["method"] for row in q[length]] == [m[0] for m in METHODS]
        for row in q[length]:
            assert -1 <= row["ari"] <= 1 and 0 <= row["nmi"] <= 1, row
        # The default has the abundance column: one more dimension than its 4-mers.
        assert q[length][0]["dim"] == q[length][1]["dim"] + 1 == 137
        even = q["even_coverage"][length]
        assert even["reads"] > 0 and -1 <= even["default"] <= 1 and -1 <= even["baseline"] <= 1
    assert q["ari_short"] == q["short"][0]["ari"]
    assert q["baseline_ari_long"] == q["long"][1]["ari"]
