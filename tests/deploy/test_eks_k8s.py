"""The EKS deployment objects on a real kube-apiserver (the `k8s` fixture).

The FSx StorageClass, PersistentVolume and PersistentVolumeClaim pass the API
server's validation (`kubectl apply --dry-run=server`) and, applied for real,
the controller-manager's volume binder binds the claim to the volume: no CSI
driver is needed for that, only for mounting. The FSx shell pod passes the
`restricted` Pod Security level. The chart rendered with values-eks.yaml puts
the IRSA role on the operator's ServiceAccount, none on the slurm-bridge's, and
every object it renders is accepted by the API server. The walkthrough's
pipeline is admitted by the CRD with its CA bundle, FSx claim and node selector,
and the SlurmJob the operator builds from it is admitted by the SlurmJob CRD
with the CA bundle reference passed on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import CHART, EKS, FSX, example_env, render
from tests.support.controlplane import ControlPlane

pytestmark = [pytest.mark.k8s]

FSX_OBJECTS = ["storageclass.yaml", "persistentvolume.yaml", "persistentvolumeclaim.yaml"]


def rendered(tmp_path: Path, name: str, env: dict[str, str], source: Path = FSX) -> Path:
    out = tmp_path / name
    out.write_text(render((source / name).read_text(), env))
    return out


def test_fsx_claim_binds_to_the_static_volume(
    k8s: ControlPlane,
    namespace: str,
    tmp_path: Path,
) -> None:
    env = {**example_env(), "PIPELINE_NAMESPACE": namespace}
    files = [rendered(tmp_path, name, env) for name in FSX_OBJECTS]
    args = [a for f in files for a in ("-f", str(f))]
    dry = k8s.kubectl("apply", "--dry-run=server", "-o", "name", *args)
    assert sorted(dry.stdout.split()) == [
        "persistentvolume/vectorpipe-fsx",
        "persistentvolumeclaim/vectorpipe-fsx",
        "storageclass.storage.k8s.io/fsx-static",
    ]
    try:
        k8s.kubectl("apply", *args)
        k8s.kubectl(
            "-n",
            namespace,
            "wait",
            "--for=jsonpath={.status.phase}=Bound",
            "pvc/vectorpipe-fsx",
            "--timeout=90s",
            timeout=120,
        )
        pv = json.loads(k8s.kubectl("get", "pv", "vectorpipe-fsx", "-o", "json").stdout)
        pvc = json.loads(
            k8s.kubectl("-n", namespace, "get", "pvc", "vectorpipe-fsx", "-o", "json").stdout
        )
        assert pv["status"]["phase"] == "Bound"
        assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
        assert pvc["spec"]["volumeName"] == "vectorpipe-fsx"
        assert pvc["status"]["accessModes"] == ["ReadWriteMany"]
        assert pvc["status"]["capacity"]["storage"] == env["FSX_CAPACITY"]
    finally:
        k8s.kubectl(
            "-n", namespace, "delete", "pvc", "vectorpipe-fsx", "--ignore-not-found", "--wait=false"
        )
        k8s.kubectl("delete", "pv", "vectorpipe-fsx", "--ignore-not-found", "--wait=false")
        k8s.kubectl("delete", "storageclass", "fsx-static", "--ignore-not-found")


def test_fsx_shell_pod_meets_the_restricted_pod_security_level(
    k8s: ControlPlane,
    namespace: str,
    tmp_path: Path,
) -> None:
    env = {**example_env(), "PIPELINE_NAMESPACE": namespace}
    k8s.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    # What `eksctl create cluster` leaves behind for the Ray pods' identity.
    k8s.kubectl("-n", namespace, "create", "serviceaccount", "vectorpipe-ray")
    pod = rendered(tmp_path, "fsx-shell.yaml", env)
    res = k8s.kubectl("apply", "--dry-run=server", "-f", str(pod), "-o", "json")
    assert json.loads(res.stdout)["spec"]["serviceAccountName"] == "vectorpipe-ray"
    # The same level refuses a pod without the hardening, so the check is real.
    loose = yaml.safe_load(pod.read_text())
    del loose["spec"]["containers"][0]["securityContext"]
    refused = k8s.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(loose), check=False
    )
    assert refused.returncode != 0 and "restricted" in refused.stderr


def helm_template(k8s: ControlPlane, values: Path, namespace: str) -> list[dict[str, Any]]:
    # The EKS version cluster.yaml asks for, not helm's offline default (v1.20).
    version = example_env()["EKS_VERSION"]
    out = k8s.helm(
        "template",
        "vectorpipe",
        str(CHART),
        "-n",
        namespace,
        "-f",
        str(values),
        "--kube-version",
        version,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_chart_with_eks_values_wires_irsa_to_the_operator_only(
    k8s: ControlPlane,
    namespace: str,
    tmp_path: Path,
) -> None:
    env = {**example_env(), "PIPELINE_NAMESPACE": namespace}
    values = rendered(tmp_path, "values-eks.yaml", env, EKS)
    docs = helm_template(k8s, values, namespace)
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    operator = accounts["vectorpipe-operator"]
    assert operator["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": f"arn:aws:iam::{env['AWS_ACCOUNT_ID']}:role/vectorpipe-operator"
    }
    assert not accounts["vectorpipe-slurm-bridge"]["metadata"].get("annotations")
    # Namespaced RBAC: write access only through Roles in the pipelines'
    # namespace; cluster-wide, at most read-only discovery.
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    assert roles["vectorpipe-operator"]["metadata"]["namespace"] == namespace
    # The controllers' cluster-wide rights are read-only. The people's roles
    # (vectorpipe-editor/-viewer) are aggregated into the built-in edit/view
    # roles and bound to nobody by the chart: they grant what a namespace's
    # admin hands out, never anything to the controllers.
    aggregated = "rbac.authorization.k8s.io/aggregate-to-"
    bound = {
        d["roleRef"]["name"] for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")
    }
    for role in (d for d in docs if d["kind"] == "ClusterRole"):
        name = role["metadata"]["name"]
        if any(k.startswith(aggregated) for k in role["metadata"].get("labels", {})):
            assert name not in bound, name
            continue
        verbs = {v for rule in role["rules"] for v in rule["verbs"]}
        assert verbs <= {"get", "list", "watch"}, name
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    (container,) = deployments["vectorpipe-operator"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{env['IMAGE_REGISTRY']}/operator:{env['VECTORPIPE_VERSION']}"
    assert {"name": "AWS_REGION", "value": env["AWS_REGION"]} in container["env"]
    # Everything the chart installs with these values is admitted by the API
    # server (hooks left out: the `helm test` pod runs later, as its own step).
    installed = [d for d in docs if "helm.sh/hook" not in d["metadata"].get("annotations", {})]
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(installed))
    k8s.kubectl("apply", "--dry-run=server", "-f", str(manifest))


def test_install_notes_show_the_slurm_block_of_the_walkthrough_pipeline(
    k8s: ControlPlane,
    namespace: str,
    tmp_path: Path,
) -> None:
    from vectorpipe_api.pipeline import PipelineDocument, SlurmSpec

    env = {**example_env(), "PIPELINE_NAMESPACE": namespace}
    values = rendered(tmp_path, "values-eks.yaml", env, EKS)
    # A client-side dry run renders NOTES.txt (helm template does not) and installs nothing.
    out = k8s.helm(
        "install",
        "vectorpipe",
        str(CHART),
        "-n",
        namespace,
        "--dry-run=client",
        "-f",
        str(values),
        "-o",
        "json",
    ).stdout
    notes = json.loads(out)["info"]["notes"]
    block = notes.split("\n\n  spec:\n", 1)[1].split("\n\n", 1)[0]
    printed = yaml.safe_load("spec:\n" + block)
    # The field names NOTES prints are the spec's own (unknown fields are refused).
    slurm = SlurmSpec.model_validate(printed["spec"]["hpc"]["slurm"])
    assert slurm.ca_bundle_secret_ref is not None
    (doc,) = yaml.safe_load_all(rendered(tmp_path, "pipeline-eks.yaml", env, EKS).read_text())
    walkthrough = PipelineDocument.model_validate(doc).spec.hpc.slurm
    for field in ("endpoint", "token_secret_ref", "ca_bundle_secret_ref", "user"):
        assert getattr(slurm, field) == getattr(walkthrough, field), field


def test_walkthrough_pipeline_is_admitted_by_the_crd(
    k8s: ControlPlane,
    namespace: str,
    tmp_path: Path,
) -> None:
    k8s.apply_crds(sorted((CHART / "crds").glob("*.yaml")))
    env = {**example_env(), "PIPELINE_NAMESPACE": namespace}
    pipeline = rendered(tmp_path, "pipeline-eks.yaml", env, EKS)
    res = k8s.kubectl("apply", "--dry-run=server", "-f", str(pipeline), "-o", "json")
    admitted = json.loads(res.stdout)
    assert admitted["spec"]["ray"]["serviceAccountName"] == "vectorpipe-ray"
    assert admitted["spec"]["s3"]["allowedBuckets"] == [env["INPUT_BUCKET"], env["OUTPUT_BUCKET"]]
    slurm = admitted["spec"]["hpc"]["slurm"]
    assert slurm["caBundleSecretRef"] == {"name": "slurm-jwt", "key": "ca.crt"}
    assert admitted["spec"]["ray"]["sharedFilesystem"] == {
        "claimName": "vectorpipe-fsx",
        "mountPath": "/fsx",
        "readOnly": True,
    }
    assert admitted["spec"]["ray"]["nodeSelector"] == {"vectorpipe.io/pool": "ray-workers"}
    # What the operator makes of it: the RayJob's pods carry the mount and the
    # selector, the SlurmJob the CA reference, and the SlurmJob CRD admits it.
    from vectorpipe_operator.builders import build_rayjob, build_slurmjob
    from vectorpipe_operator.resources import Pipeline

    pipeline_obj = Pipeline.from_body(
        {**admitted, "metadata": {**admitted["metadata"], "uid": "u1"}}
    )
    cluster = build_rayjob(pipeline_obj)["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]] + [
        g["template"]["spec"] for g in cluster["workerGroupSpecs"]
    ]
    for pod in pods:
        assert pod["nodeSelector"] == {"vectorpipe.io/pool": "ray-workers"}
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == ["vectorpipe-fsx"]
        assert "/fsx" in {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    slurmjob = build_slurmjob(pipeline_obj, f"{admitted['spec']['output']['uri']}_manifest.json")
    slurmjob["metadata"].pop("ownerReferences", None)  # no such pipeline object to own it
    res = k8s.kubectl(
        "apply", "--dry-run=server", "-f", "-", "-o", "json", input=json.dumps(slurmjob)
    )
    connection = json.loads(res.stdout)["spec"]["slurm"]
    assert connection["caBundleSecretRef"] == {"name": "slurm-jwt", "key": "ca.crt"}
    assert connection["endpoint"] == env["SLURM_ENDPOINT"]
