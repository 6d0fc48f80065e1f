"""Our CRDs on the real kube-apiserver: what it accepts, what it refuses and how it shows them.

Every rejection is asserted with the API server's own message (OpenAPI
validation, CEL rules, strict field validation), so these tests prove the
generated schema does what the models say, not merely that it parses.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.admission import BAD, pipeline
from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[2]
CRDS = sorted((REPO / "charts" / "vectorpipe" / "crds").glob("vectorpipe.io_*.yaml"))
EXAMPLES = sorted((REPO / "examples").glob("pipeline*.yaml"))


@pytest.fixture(scope="module")
def crds(k8s: ControlPlane) -> ControlPlane:
    names = k8s.apply_crds(CRDS)
    assert set(names) == {"vectorpipelines.vectorpipe.io", "slurmjobs.vectorpipe.io"}
    return k8s


def create(k8s: ControlPlane, ns: str, obj: dict[str, Any]) -> Any:
    return k8s.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(obj), check=False)


def get(k8s: ControlPlane, ns: str, kind: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(k8s.kubectl("get", kind, name, "-n", ns, "-o", "json").stdout)
    return out


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_accepted_with_defaults_applied(
    crds: ControlPlane, namespace: str, path: Path
) -> None:
    res = crds.kubectl("create", "-n", namespace, "-f", str(path), check=False)
    assert res.returncode == 0, res.stderr
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    spec = get(crds, namespace, "vectorpipeline", name)["spec"]
    # Nested defaults reach every level because optional sub-objects default to {}.
    assert spec["embedding"]["method"] == "kmer"
    assert spec["output"]["format"] == "parquet"
    assert spec["ray"]["workers"]["cpu"]
    assert spec["hpc"]["slurm"]["timeLimit"]
    assert spec["hpc"]["app"]["name"] == "kmeans"
    assert spec["embedding"]["abundance"]["enabled"] is True
    assert spec["hpc"]["app"]["nInit"] == 8
    assert spec["s3"] is not None


def test_minimal_example_gets_the_documented_defaults(crds: ControlPlane, namespace: str) -> None:
    crds.kubectl("create", "-n", namespace, "-f", str(REPO / "examples" / "pipeline.yaml"))
    spec = get(crds, namespace, "vp", "minimal")["spec"]
    assert spec["embedding"] == {
        "method": "kmer",
        "k": 4,
        "canonical": True,
        "transform": "none",
        "seed": 0,
        "abundance": {"enabled": True, "k": 21, "scaled": 8, "tableBits": 22, "weight": 1.0},
    }
    assert spec["output"]["shards"] == 8
    assert spec["ray"]["workers"]["replicas"] == 1
    assert spec["hpc"]["slurm"]["ntasksPerNode"] == 2
    assert spec["hpc"]["app"]["clusters"] == 20
    assert spec["hpc"]["app"]["tolerance"] == 0.0001
    assert spec["hpc"]["app"]["nInit"] == 8


@pytest.mark.faults
@pytest.mark.parametrize(("case", "body", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_pipelines_are_refused_by_the_api_server(
    crds: ControlPlane, namespace: str, case: str, body: dict[str, Any], message: str
) -> None:
    res = create(crds, namespace, copy.deepcopy(body))
    assert res.returncode != 0, f"{case} was accepted"
    assert message in res.stderr, res.stderr


@pytest.mark.faults
def test_spec_is_immutable_but_metadata_and_status_are_not(
    crds: ControlPlane, namespace: str
) -> None:
    assert create(crds, namespace, pipeline()).returncode == 0
    res = crds.kubectl(
        "patch", "vectorpipeline", "p1", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"output": {"shards": 9}}}), check=False,
    )  # fmt: skip
    assert res.returncode != 0
    assert "spec is immutable during a run; change spec.runId" in res.stderr, res.stderr
    # Labels and annotations stay editable (Kopf keeps its state there) ...
    crds.kubectl("label", "vectorpipeline", "p1", "-n", namespace, "team=genomics")
    # ... and the status subresource is the operator's.
    status = {"status": {"phase": "Embedding", "observedGeneration": 1}}
    crds.kubectl(
        "patch", "vectorpipeline", "p1", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(status),
    )  # fmt: skip
    obj = get(crds, namespace, "vectorpipeline", "p1")
    assert obj["status"]["phase"] == "Embedding"
    assert obj["metadata"]["generation"] == 1


@pytest.mark.faults
def test_a_new_run_id_admits_a_changed_spec(crds: ControlPlane, namespace: str) -> None:
    """The GitOps way to re-run: the edit and a new spec.runId in one apply."""
    assert create(crds, namespace, pipeline(runId="a")).returncode == 0

    def patch(spec: dict[str, Any]) -> Any:
        return crds.kubectl(
            "patch", "vectorpipeline", "p1", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": spec}), check=False,
        )  # fmt: skip

    res = patch({"output": {"shards": 9}})
    assert res.returncode != 0 and "change spec.runId as well" in res.stderr, res.stderr
    res = patch({"output": {"shards": 9}, "runId": "b"})
    assert res.returncode == 0, res.stderr
    obj = get(crds, namespace, "vectorpipeline", "p1")
    assert (obj["spec"]["runId"], obj["spec"]["output"]["shards"]) == ("b", 9)
    assert obj["metadata"]["generation"] == 2
    res = patch({"runId": "c"})  # a re-run of the same spec
    assert res.returncode == 0, res.stderr
    res = crds.kubectl(  # dropping the run id is a new run too
        "patch", "vectorpipeline", "p1", "-n", namespace, "--type=json",
        "-p", '[{"op":"remove","path":"/spec/runId"}]', check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert patch({"output": {"shards": 3}}).returncode != 0


def test_status_is_validated_too(crds: ControlPlane, namespace: str) -> None:
    assert create(crds, namespace, pipeline()).returncode == 0
    res = crds.kubectl(
        "patch", "vectorpipeline", "p1", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {"phase": "Exploded"}}), check=False,
    )  # fmt: skip
    assert res.returncode != 0
    assert 'status.phase: Unsupported value: "Exploded"' in res.stderr, res.stderr


def test_kubectl_get_shows_the_printer_columns(crds: ControlPlane, namespace: str) -> None:
    assert create(crds, namespace, pipeline("r42")).returncode == 0
    status = {
        "status": {
            "phase": "Clustering",
            "ray": {"rayJob": "r42-etl", "jobStatus": "SUCCEEDED"},
            "slurm": {"slurmJob": "r42-kmeans", "phase": "Running"},
            "outputs": {"rows": 123456},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "Clustering",
                    "message": "stage 2 is running",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }
            ],
        }
    }
    crds.kubectl(
        "patch", "vectorpipeline", "r42", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(status),
    )  # fmt: skip
    for resource in ("vectorpipelines", "vp", "vpipe", "vectorpipe"):
        out = crds.kubectl("get", resource, "-n", namespace).stdout.splitlines()
        assert out[0].split() == ["NAME", "PHASE", "EMBEDDING", "CLUSTERING", "ROWS", "AGE"], out
        row = out[1].split()
        # A category lists several kinds, so kubectl prefixes the kind there.
        row[0] = row[0].rsplit("/", 1)[-1]
        assert row[:5] == ["r42", "Clustering", "SUCCEEDED", "Running", "123456"], out
    wide = crds.kubectl("get", "vp", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-1] == "REASON" and wide[1].split()[-1] == "Clustering"


SLURMJOB: dict[str, Any] = {
    "apiVersion": "vectorpipe.io/v1alpha1",
    "kind": "SlurmJob",
    "metadata": {"name": "hello"},
    "spec": {"command": ["python", "-c", "print(1)"], "nodes": 2, "ntasksPerNode": 2},
}


def _slurmjob(**spec: Any) -> dict[str, Any]:
    body = copy.deepcopy(SLURMJOB)
    body["spec"].update(spec)
    return body


def test_slurmjob_accepted_with_defaults(crds: ControlPlane, namespace: str) -> None:
    assert create(crds, namespace, SLURMJOB).returncode == 0
    spec = get(crds, namespace, "sj", "hello")["spec"]
    assert spec["timeLimit"] == "01:00:00"
    assert spec["slurm"] == {"user": "vectorpipe", "insecureSkipVerify": False}
    assert spec["backoffLimit"] == 0
    assert "launcher" not in spec  # mpirun is the effective default for a command
    header = crds.kubectl("get", "slurmjobs", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "JOB", "ID", "STATE", "NODES", "EXIT", "AGE"]


SLURM_BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "script-and-command",
        _slurmjob(script="#!/bin/bash\nhostname\n"),
        "exactly one of script or command must be set",
    ),
    (
        "launcher-with-script",
        {**_slurmjob(), "spec": {"script": "#!/bin/sh\n", "launcher": "srun"}},
        "launcher and launcherArgs are only valid with command",
    ),
    ("bad-launcher", _slurmjob(launcher="pbsdsh"), 'Unsupported value: "pbsdsh"'),
    (
        "endpoint-without-token",
        _slurmjob(slurm={"endpoint": "https://head:6820"}),
        "tokenSecretRef is required when endpoint is set",
    ),
    ("bad-time-limit", _slurmjob(timeLimit="soon"), "spec.timeLimit in body should match"),
]


@pytest.mark.faults
@pytest.mark.parametrize(("case", "body", "message"), SLURM_BAD, ids=[b[0] for b in SLURM_BAD])
def test_bad_slurmjobs_are_refused(
    crds: ControlPlane, namespace: str, case: str, body: dict[str, Any], message: str
) -> None:
    res = create(crds, namespace, body)
    assert res.returncode != 0, f"{case} was accepted"
    assert message in res.stderr, res.stderr


@pytest.mark.faults
def test_slurmjob_spec_is_immutable(crds: ControlPlane, namespace: str) -> None:
    assert create(crds, namespace, SLURMJOB).returncode == 0
    res = crds.kubectl(
        "patch", "slurmjob", "hello", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"nodes": 3}}), check=False,
    )  # fmt: skip
    assert "spec is immutable once a SlurmJob is created" in res.stderr, res.stderr
