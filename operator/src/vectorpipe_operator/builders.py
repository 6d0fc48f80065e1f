"""Pure builders of the children a VectorPipeline owns: ConfigMap, RayJob, SlurmJob.

Each `build_*` function takes a parsed `Pipeline` (and, for stage 2, the
manifest URI) and returns the complete object as a plain dict, like
dask-kubernetes' `build_*_spec`; nothing here talks to the API or reads the
clock, so the same pipeline always yields the same children and the unit tests
can compare them field by field. Every child carries an owner reference to the
pipeline (controller, blockOwnerDeletion) so the garbage collector deletes it
with the pipeline, and the pipeline's name and UID as labels so the operator
can find it and its watches can select only what it owns.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from vectorpipe_api.meta import (
    API_VERSION,
    PIPELINE_KIND,
    RAY_GROUP,
    RAY_VERSION,
    RAYJOB_KIND,
    SLURMJOB_KIND,
)
from vectorpipe_api.pipeline import ResourcesSpec
from vectorpipe_operator.resources import (
    CONFIG_FILE,
    CONFIG_MOUNT,
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PIPELINE,
    LABEL_PIPELINE_UID,
    MANAGER,
    Pipeline,
)
from vectorpipe_workloads.manifest import kmeans_argv

CONFIG_VOLUME = "pipeline"
SHARED_VOLUME = "shared-fs"
WORKER_GROUP = "workers"


def owner_reference(p: Pipeline) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": PIPELINE_KIND,
        "name": p.name,
        "uid": p.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(p: Pipeline, component: str) -> dict[str, str]:
    return {
        LABEL_NAME: "vectorpipe",
        LABEL_COMPONENT: component,
        LABEL_MANAGED_BY: MANAGER,
        LABEL_PIPELINE: p.name,
        LABEL_PIPELINE_UID: p.uid,
    }


def _metadata(p: Pipeline, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": p.namespace,
        "labels": labels(p, component),
        "ownerReferences": [owner_reference(p)],
    }


def pipeline_document(p: Pipeline) -> dict[str, Any]:
    """The whole VectorPipeline as `vectorpipe etl --pipeline` reads it (defaults applied)."""
    return {
        "apiVersion": API_VERSION,
        "kind": PIPELINE_KIND,
        "metadata": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
        "spec": p.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def build_configmap(p: Pipeline) -> dict[str, Any]:
    """The pipeline YAML that the Ray pods mount at /etc/vectorpipe."""
    text = yaml.safe_dump(pipeline_document(p), sort_keys=False, default_flow_style=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(p, p.configmap_name, "pipeline-spec"),
        "data": {CONFIG_FILE: text},
    }


def etl_entrypoint() -> str:
    return shlex.join(
        [
            "python",
            "-m",
            "vectorpipe_workloads",
            "etl",
            "--pipeline",
            f"{CONFIG_MOUNT}/{CONFIG_FILE}",
        ]
    )


def _s3_env(p: Pipeline) -> list[dict[str, str]]:
    # The ETL reads spec.s3 from the mounted pipeline file; the environment
    # also points botocore's default chain (and any tool in the image, such as
    # `ray job submit`'s working-dir upload) at the same place. Stage 2 gets
    # the same settings as flags (`kmeans_argv`), the one way they reach it.
    env = []
    if p.spec.s3.endpoint_url:
        env.append({"name": "AWS_ENDPOINT_URL_S3", "value": p.spec.s3.endpoint_url})
    if p.spec.s3.region:
        env.append({"name": "AWS_REGION", "value": p.spec.s3.region})
    return env


def _ray_pod_template(p: Pipeline, container: str, res: ResourcesSpec) -> dict[str, Any]:
    quantity = {"cpu": res.cpu, "memory": res.memory}
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": container,
                "image": p.spec.ray.image,
                # Requests equal limits: Ray sizes its resources from the limits.
                "resources": {"requests": dict(quantity), "limits": dict(quantity)},
                "volumeMounts": [
                    {"name": CONFIG_VOLUME, "mountPath": CONFIG_MOUNT, "readOnly": True}
                ],
            }
        ],
        "volumes": [{"name": CONFIG_VOLUME, "configMap": {"name": p.configmap_name}}],
    }
    env = _s3_env(p)
    if env:
        spec["containers"][0]["env"] = env
    ray = p.spec.ray
    if ray.service_account_name:
        spec["serviceAccountName"] = ray.service_account_name
    if ray.shared_filesystem:
        fs = ray.shared_filesystem
        spec["volumes"].append(
            {
                "name": SHARED_VOLUME,
                "persistentVolumeClaim": {"claimName": fs.claim_name, "readOnly": fs.read_only},
            }
        )
        spec["containers"][0]["volumeMounts"].append(
            {"name": SHARED_VOLUME, "mountPath": fs.mount_path, "readOnly": fs.read_only}
        )
    if ray.node_selector:
        spec["nodeSelector"] = dict(ray.node_selector)
    if ray.tolerations:
        spec["tolerations"] = [
            t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in ray.tolerations
        ]
    return {"metadata": {"labels": labels(p, "ray")}, "spec": spec}


def build_rayjob(p: Pipeline) -> dict[str, Any]:
    """Stage 1: a KubeRay RayJob whose entrypoint runs the ETL over the mounted pipeline YAML."""
    ray = p.spec.ray
    cluster: dict[str, Any] = {
        "rayVersion": ray.ray_version,
        "headGroupSpec": {
            "rayStartParams": dict(ray.head.ray_start_params),
            "template": _ray_pod_template(p, "ray-head", ray.head),
        },
    }
    if ray.workers.replicas > 0:
        n = ray.workers.replicas
        cluster["workerGroupSpecs"] = [
            {
                "groupName": WORKER_GROUP,
                "replicas": n,
                "minReplicas": n,
                "maxReplicas": n,
                "rayStartParams": dict(ray.workers.ray_start_params),
                "template": _ray_pod_template(p, "ray-worker", ray.workers),
            }
        ]
    spec: dict[str, Any] = {
        "entrypoint": etl_entrypoint(),
        "submissionMode": "K8sJobMode",
        "shutdownAfterJobFinishes": ray.shutdown_after_job_finishes,
        "backoffLimit": ray.backoff_limit,
        "rayClusterSpec": cluster,
    }
    # KubeRay refuses a TTL on a cluster it is told to keep.
    if ray.shutdown_after_job_finishes:
        spec["ttlSecondsAfterFinished"] = ray.ttl_seconds_after_finished
    if ray.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = ray.active_deadline_seconds
    return {
        "apiVersion": f"{RAY_GROUP}/{RAY_VERSION}",
        "kind": RAYJOB_KIND,
        "metadata": _metadata(p, p.rayjob_name, "etl"),
        "spec": spec,
    }


def kmeans_command(p: Pipeline, manifest_uri: str) -> list[str]:
    """Stage 2's argv on the cluster: the workloads' own builder, S3 settings as flags."""
    return ["python", *kmeans_argv(p.spec, manifest_uri)]


def build_slurmjob(p: Pipeline, manifest_uri: str) -> dict[str, Any]:
    """Stage 2: a SlurmJob running the MPI k-means over the committed shards."""
    slurm = p.spec.hpc.slurm
    connection: dict[str, Any] = {"user": slurm.user}
    if slurm.endpoint:
        connection["endpoint"] = slurm.endpoint
    if slurm.token_secret_ref:
        connection["tokenSecretRef"] = {
            "name": slurm.token_secret_ref.name,
            "key": slurm.token_secret_ref.key,
        }
    if slurm.ca_bundle_secret_ref:
        connection["caBundleSecretRef"] = {
            "name": slurm.ca_bundle_secret_ref.name,
            "key": slurm.ca_bundle_secret_ref.key,
        }
    spec: dict[str, Any] = {
        "command": kmeans_command(p, manifest_uri),
        "launcher": "mpirun",
        "nodes": slurm.nodes,
        "ntasksPerNode": slurm.ntasks_per_node,
        "cpusPerTask": slurm.cpus_per_task,
        "timeLimit": slurm.time_limit,
        "backoffLimit": slurm.backoff_limit,
        "slurm": connection,
    }
    for key, value in (
        ("partition", slurm.partition),
        ("account", slurm.account),
        ("qos", slurm.qos),
    ):
        if value:
            spec[key] = value
    return {
        "apiVersion": API_VERSION,
        "kind": SLURMJOB_KIND,
        "metadata": _metadata(p, p.slurmjob_name, "kmeans"),
        "spec": spec,
    }
