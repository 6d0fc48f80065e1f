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
from vectorpipe_operator.builders_ray import ray_cluster_spec, submitter_pod_template
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


def rayjob_metadata(p: Pipeline) -> dict[str, Any]:
    """The RayJob's metadata: `spec.ray.labels`/`annotations` under the operator's own.

    Ours win a clash: the operator finds its children, and its watches select
    them, by these labels. A queue label (kueue.x-k8s.io/queue-name) passes
    through, which is all Kueue needs to admit the RayJob.
    """
    ray = p.spec.ray
    meta = _metadata(p, p.rayjob_name, "etl")
    meta["labels"] = {**ray.labels, **meta["labels"]}
    if ray.annotations:
        meta["annotations"] = dict(ray.annotations)
    return meta


def build_rayjob(p: Pipeline) -> dict[str, Any]:
    """Stage 1: a KubeRay RayJob whose entrypoint runs the ETL over the mounted pipeline YAML.

    Its pods (head, workers, submitter, the autoscaler sidecar) are built in
    `builders_ray`, each fit for Pod Security `restricted`.
    """
    ray = p.spec.ray
    spec: dict[str, Any] = {
        "entrypoint": etl_entrypoint(),
        "submissionMode": "K8sJobMode",
        "shutdownAfterJobFinishes": ray.shutdown_after_job_finishes,
        "backoffLimit": ray.backoff_limit,
        "rayClusterSpec": ray_cluster_spec(p, labels(p, "ray")),
        "submitterPodTemplate": submitter_pod_template(p, labels(p, "ray-submitter")),
    }
    # KubeRay refuses a TTL on a cluster it is told to keep.
    if ray.shutdown_after_job_finishes:
        spec["ttlSecondsAfterFinished"] = ray.ttl_seconds_after_finished
    if ray.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = ray.active_deadline_seconds
    if ray.runtime_env_yaml:
        spec["runtimeEnvYAML"] = ray.runtime_env_yaml
    if ray.deletion_strategy is not None:
        # Rules only (KubeRay's RayJobDeletionPolicy feature gate); the model
        # has already required shutdownAfterJobFinishes: false, hence no TTL.
        spec["deletionStrategy"] = ray.deletion_strategy.model_dump(mode="json", by_alias=True)
    return {
        "apiVersion": f"{RAY_GROUP}/{RAY_VERSION}",
        "kind": RAYJOB_KIND,
        "metadata": rayjob_metadata(p),
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
