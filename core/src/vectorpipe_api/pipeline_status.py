"""The `VectorPipeline` status as typed models, written only by the operator.

One phase enum, the standard conditions (EmbeddingComplete,
ClusteringComplete, Ready, and PodsHealthy once stage 1's pods have been
looked at), `observedGeneration`, the run it describes, and
summaries of the children and outputs. `hack/gen_crds.py` generates the CRD's
status schema from these models, and the operator builds every status it
writes with them, so the two cannot drift.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vectorpipe_api.base import Condition, StatusModel

Phase = Literal["Pending", "Embedding", "Clustering", "Succeeded", "Failed"]
PHASES: tuple[Phase, ...] = ("Pending", "Embedding", "Clustering", "Succeeded", "Failed")
TERMINAL: frozenset[str] = frozenset({"Succeeded", "Failed"})

COND_EMBEDDING = "EmbeddingComplete"
COND_CLUSTERING = "ClusteringComplete"
COND_READY = "Ready"
# Whether a Ray pod of stage 1 is stuck (a container that cannot start or keeps
# crashing); written once the operator has looked at the pods.
COND_PODS = "PodsHealthy"


class RayStatus(StatusModel):
    """The stage-1 RayJob as last observed."""

    ray_job: str = Field(description="Name of the RayJob.")
    job_status: str | None = Field(default=None, description="RayJob status.jobStatus.")
    job_deployment_status: str | None = Field(
        default=None, description="RayJob status.jobDeploymentStatus."
    )
    reason: str | None = None
    message: str | None = None
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    end_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    ray_cluster_name: str | None = Field(
        default=None, description="RayCluster KubeRay created for the RayJob (rayClusterName)."
    )
    dashboard_url: str | None = Field(
        default=None,
        alias="dashboardURL",
        description="Ray dashboard (job API) address of that cluster, host:port (dashboardURL).",
    )
    job_id: str | None = Field(default=None, description="Ray job (submission) id (jobId).")


class SlurmStatus(StatusModel):
    """The stage-2 SlurmJob as last observed."""

    slurm_job: str = Field(description="Name of the SlurmJob.")
    phase: str | None = Field(default=None, description="SlurmJob status.phase.")
    job_id: int | None = Field(default=None, description="Slurm job id.")
    state: str | None = Field(default=None, description="Slurm job state.")
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    end_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class Outputs(StatusModel):
    """Where the results are, as soon as each is committed."""

    manifest: str | None = Field(default=None, description="URI of _manifest.json.")
    format: str | None = Field(default=None, description="Shard format.")
    shards: int | None = Field(default=None, ge=0)
    rows: int | None = Field(default=None, ge=0)
    dim: int | None = Field(default=None, ge=0, description="Embedding dimension.")
    bytes: int | None = Field(default=None, ge=0, description="Total shard bytes.")
    clustering: str | None = Field(default=None, description="Prefix of the clustering output.")
    centroids: str | None = Field(default=None, description="URI of centroids.parquet.")
    metrics: str | None = Field(default=None, description="URI of the k-means metrics.json.")


class VectorPipelineStatus(StatusModel):
    """Observed state of a VectorPipeline; written only by the operator."""

    phase: Phase | None = Field(default=None, description="Lifecycle phase.")
    observed_generation: int | None = Field(default=None, ge=0)
    run_id: str | None = Field(
        default=None, description="spec.runId of the run this status describes (unset: none)."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    completion_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    ray: RayStatus | None = None
    slurm: SlurmStatus | None = None
    outputs: Outputs | None = None
