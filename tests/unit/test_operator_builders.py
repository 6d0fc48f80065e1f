"""The operator's pure builders: ConfigMap, RayJob and SlurmJob from a VectorPipeline."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from vectorpipe_api.pipeline import AppSpec
from vectorpipe_api.pipeline_names import (
    MAX_RUN_BASE,
    configmap_name,
    rayjob_name,
    slurmjob_name,
)
from vectorpipe_api.slurmjob import SlurmJobSpec
from vectorpipe_operator import builders
from vectorpipe_operator.resources import LABEL_PIPELINE, LABEL_PIPELINE_UID, Pipeline
from vectorpipe_workloads.pipeline_file import parse_document

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UID = "0b5c3f8e-1111-2222-3333-444455556666"


def pipeline_from(path: Path, uid: str = UID, namespace: str = "team-a") -> Pipeline:
    body = yaml.safe_load(path.read_text())
    body["metadata"].update(uid=uid, namespace=namespace, generation=1)
    return Pipeline.from_body(body)


@pytest.fixture
def minimal() -> Pipeline:
    return pipeline_from(EXAMPLES / "pipeline.yaml")


@pytest.fixture
def s3() -> Pipeline:
    return pipeline_from(EXAMPLES / "pipeline-s3.yaml")


def assert_owned(obj: dict[str, Any], p: Pipeline) -> None:
    meta = obj["metadata"]
    assert meta["namespace"] == p.namespace
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "vectorpipe.io/v1alpha1",
            "kind": "VectorPipeline",
            "name": p.name,
            "uid": p.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"][LABEL_PIPELINE] == p.name
    assert meta["labels"][LABEL_PIPELINE_UID] == p.uid


def test_configmap_holds_the_whole_pipeline_document(s3: Pipeline) -> None:
    cm = builders.build_configmap(s3)
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "gut-r42-pipeline"
    assert_owned(cm, s3)
    doc = yaml.safe_load(cm["data"]["pipeline.yaml"])
    # The document is exactly what `vectorpipe etl --pipeline` validates.
    parsed = parse_document(doc)
    assert parsed.name == "gut-r42"
    assert parsed.spec == s3.spec
    assert doc["spec"]["embedding"]["transform"] == "clr"


def test_rayjob_runs_stage_one_over_the_mounted_config(s3: Pipeline) -> None:
    rj = builders.build_rayjob(s3)
    assert (rj["apiVersion"], rj["kind"]) == ("ray.io/v1", "RayJob")
    assert rj["metadata"]["name"] == "gut-r42-etl"
    assert_owned(rj, s3)
    spec = rj["spec"]
    assert shlex.split(spec["entrypoint"]) == [
        "python", "-m", "vectorpipe_workloads", "etl",
        "--pipeline", "/etc/vectorpipe/pipeline.yaml",
    ]  # fmt: skip
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] == 300
    assert spec["activeDeadlineSeconds"] == 14400
    assert spec["backoffLimit"] == 1
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == s3.spec.ray.ray_version
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"] == {"num-cpus": "0"}
    (workers,) = cluster["workerGroupSpecs"]
    assert workers["replicas"] == workers["minReplicas"] == workers["maxReplicas"] == 8
    for group, cpu, mem in ((head, "2", "8Gi"), (workers, "8", "32Gi")):
        pod = group["template"]["spec"]
        assert pod["serviceAccountName"] == "vectorpipe-ray"
        (c,) = pod["containers"]
        assert c["image"] == s3.spec.ray.image
        assert c["resources"] == {
            "requests": {"cpu": cpu, "memory": mem},
            "limits": {"cpu": cpu, "memory": mem},
        }
        assert c["volumeMounts"][0] == {
            "name": "pipeline",
            "mountPath": "/etc/vectorpipe",
            "readOnly": True,
        }
        assert pod["volumes"][0] == {"name": "pipeline", "configMap": {"name": "gut-r42-pipeline"}}
        assert {"name": "AWS_REGION", "value": "us-east-1"} in c["env"]


def test_rayjob_defaults_and_no_ttl_when_the_cluster_is_kept(minimal: Pipeline) -> None:
    rj = builders.build_rayjob(minimal)
    spec = rj["spec"]
    assert "activeDeadlineSeconds" not in spec
    assert spec["ttlSecondsAfterFinished"] == 600
    pod = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert "serviceAccountName" not in pod
    assert not [e for e in pod["containers"][0]["env"] if e["name"].startswith("AWS_")]

    body = {
        "metadata": {"name": "keep", "namespace": "ns", "uid": UID},
        "spec": {
            "input": {"uri": "/in/"},
            "output": {"uri": "/out/"},
            "ray": {"shutdownAfterJobFinishes": False, "workers": {"replicas": 0}},
        },
    }
    kept = builders.build_rayjob(Pipeline.from_body(body))["spec"]
    # KubeRay rejects a TTL on a RayJob whose cluster is not shut down.
    assert kept["shutdownAfterJobFinishes"] is False
    assert "ttlSecondsAfterFinished" not in kept
    assert "workerGroupSpecs" not in kept["rayClusterSpec"]


def test_slurmjob_runs_the_mpi_kmeans_over_the_manifest(s3: Pipeline) -> None:
    manifest = "s3://vectorpipe-runs/gut/r42/_manifest.json"
    sj = builders.build_slurmjob(s3, manifest)
    assert (sj["apiVersion"], sj["kind"]) == ("vectorpipe.io/v1alpha1", "SlurmJob")
    assert sj["metadata"]["name"] == "gut-r42-kmeans"
    assert_owned(sj, s3)
    spec = sj["spec"]
    assert spec["command"] == [
        "python", "-m", "vectorpipe_workloads.kmeans",
        "--manifest", manifest,
        "--output", "s3://vectorpipe-runs/gut/r42/clustering/",
        "--clusters", "50", "--max-iterations", "200", "--tolerance", "0.0001", "--seed", "42",
        "--n-init", str(s3.spec.hpc.app.n_init),
        "--s3-region", "us-east-1",
    ]  # fmt: skip
    assert spec["launcher"] == "mpirun"
    assert (spec["nodes"], spec["ntasksPerNode"], spec["cpusPerTask"]) == (4, 16, 1)
    assert spec["partition"] == "compute"
    assert spec["timeLimit"] == "02:00:00"
    assert "account" not in spec and "qos" not in spec
    # S3 settings reach stage 2 one way, as flags of its own command line.
    assert "environment" not in spec
    assert spec["slurm"] == {
        "endpoint": "https://head-node.pcluster.internal:8082",
        "tokenSecretRef": {"name": "slurm-jwt", "key": "token"},
        "user": "ec2-user",
    }
    # What the operator creates is a valid SlurmJob by the bridge's own model.
    parsed = SlurmJobSpec.model_validate(spec)
    assert parsed.ranks == 64
    assert parsed.effective_launcher == "mpirun"


def test_slurmjob_without_endpoint_uses_the_bridge_default(minimal: Pipeline) -> None:
    sj = builders.build_slurmjob(minimal, "/fsx/runs/minimal/_manifest.json")
    assert sj["spec"]["slurm"] == {"user": "vectorpipe"}
    assert "--csv" not in sj["spec"]["command"]
    assert sj["spec"]["command"][sj["spec"]["command"].index("--output") + 1] == (
        "/fsx/runs/minimal/clustering/"
    )
    SlurmJobSpec.model_validate(sj["spec"])


def _with_spec(p: Pipeline, path: str, **changes: Any) -> Pipeline:
    body = yaml.safe_load((EXAMPLES / path).read_text())
    for section, values in changes.items():
        body["spec"].setdefault(section, {}).update(values)
    body["metadata"].update(uid=p.uid, namespace=p.namespace, generation=1)
    return Pipeline.from_body(body)


def test_slurmjob_passes_the_k_means_plus_plus_starts(minimal: Pipeline) -> None:
    hpc = yaml.safe_load((EXAMPLES / "pipeline.yaml").read_text())["spec"].get("hpc", {})
    hpc.setdefault("app", {})["nInit"] = 9
    p = _with_spec(minimal, "pipeline.yaml", hpc=hpc)
    command = builders.build_slurmjob(p, "/fsx/m.json")["spec"]["command"]
    assert command[command.index("--n-init") + 1] == "9"
    default = builders.build_slurmjob(minimal, "/fsx/m.json")["spec"]["command"]
    assert default[default.index("--n-init") + 1] == str(AppSpec.model_fields["n_init"].default)


def test_slurmjob_carries_the_ca_bundle_and_the_retry_budget(s3: Pipeline) -> None:
    hpc = yaml.safe_load((EXAMPLES / "pipeline-s3.yaml").read_text())["spec"]["hpc"]
    hpc["slurm"]["caBundleSecretRef"] = {"name": "slurmrestd-ca"}
    hpc["slurm"]["backoffLimit"] = 2
    p = _with_spec(s3, "pipeline-s3.yaml", hpc=hpc)
    spec = builders.build_slurmjob(p, "s3://b/_manifest.json")["spec"]
    assert spec["slurm"]["caBundleSecretRef"] == {"name": "slurmrestd-ca", "key": "ca.crt"}
    assert spec["backoffLimit"] == 2
    assert SlurmJobSpec.model_validate(spec).backoff_limit == 2
    assert builders.build_slurmjob(s3, "s3://b/_manifest.json")["spec"]["backoffLimit"] == 0


def test_ray_pods_mount_the_shared_filesystem_and_land_where_told(minimal: Pipeline) -> None:
    p = _with_spec(
        minimal,
        "pipeline.yaml",
        ray={
            "sharedFilesystem": {"claimName": "fsx-claim", "readOnly": True},
            "nodeSelector": {"vectorpipe.io/pool": "ray-workers"},
            "tolerations": [{"key": "ray", "operator": "Exists", "effect": "NoSchedule"}],
        },
    )
    cluster = builders.build_rayjob(p)["spec"]["rayClusterSpec"]
    templates = [cluster["headGroupSpec"]["template"]]
    templates += [g["template"] for g in cluster.get("workerGroupSpecs", [])]
    for template in templates:
        pod = template["spec"]
        assert {
            "name": "shared-fs",
            "persistentVolumeClaim": {"claimName": "fsx-claim", "readOnly": True},
        } in pod["volumes"]
        mounts = pod["containers"][0]["volumeMounts"]
        assert {"name": "shared-fs", "mountPath": "/fsx", "readOnly": True} in mounts
        assert pod["nodeSelector"] == {"vectorpipe.io/pool": "ray-workers"}
        assert pod["tolerations"] == [{"key": "ray", "operator": "Exists", "effect": "NoSchedule"}]
    # Without them, the pods carry none of it.
    plain = builders.build_rayjob(minimal)["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    assert "shared-fs" not in [v["name"] for v in plain["spec"]["volumes"]]
    assert "nodeSelector" not in plain["spec"] and "tolerations" not in plain["spec"]


def test_builders_are_pure(s3: Pipeline) -> None:
    assert builders.build_rayjob(s3) == builders.build_rayjob(s3)
    assert builders.build_configmap(s3) == builders.build_configmap(s3)
    a = builders.build_slurmjob(s3, "s3://b/m.json")
    a["spec"]["command"].append("mutated")
    assert builders.build_slurmjob(s3, "s3://b/m.json")["spec"]["command"][-1] != "mutated"


def test_child_names_fit_kuberay_limits() -> None:
    name = "a" * MAX_RUN_BASE
    assert len(rayjob_name(name)) == 47  # KubeRay's MaxRayJobNameLength
    assert len(slurmjob_name(name)) <= 63
    assert len(configmap_name(name)) <= 253
    # With a run id the pipeline name must leave room for "-<runId>" (a CEL rule).
    run = "r" * 5
    assert len(rayjob_name("a" * (MAX_RUN_BASE - len(run) - 1), run)) == 47


def test_a_run_id_names_every_child_of_that_run(minimal: Pipeline) -> None:
    body = {
        "apiVersion": "vectorpipe.io/v1alpha1",
        "kind": "VectorPipeline",
        "metadata": {"name": "gut", "namespace": "ns", "uid": UID},
        "spec": {"runId": "b2", "input": {"uri": "/in/"}, "output": {"uri": "/out/"}},
    }
    p = Pipeline.from_body(body)
    rj = builders.build_rayjob(p)
    assert rj["metadata"]["name"] == "gut-b2-etl"
    assert builders.build_configmap(p)["metadata"]["name"] == "gut-b2-pipeline"
    assert builders.build_slurmjob(p, "/out/_manifest.json")["metadata"]["name"] == "gut-b2-kmeans"
    volumes = rj["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["volumes"]
    assert volumes[0]["configMap"]["name"] == "gut-b2-pipeline"
    # The mounted pipeline file carries the UID and runId stage 1 records as its run.
    doc = yaml.safe_load(builders.build_configmap(p)["data"]["pipeline.yaml"])
    assert parse_document(doc).run == f"{UID}/b2"


def test_the_slurmjob_command_parses_with_the_stage2_cli(s3: Pipeline) -> None:
    from vectorpipe_workloads.kmeans.cli import build_parser

    cmd = builders.build_slurmjob(s3, "s3://b/m.json")["spec"]["command"]
    args = build_parser().parse_args(cmd[3:])
    app = s3.spec.hpc.app
    assert (args.clusters, args.max_iterations, args.seed, args.n_init) == (
        app.clusters,
        app.max_iterations,
        app.seed,
        app.n_init,
    )
    assert args.tolerance == app.tolerance
    assert (args.s3_endpoint_url, args.s3_region) == (s3.spec.s3.endpoint_url, s3.spec.s3.region)
