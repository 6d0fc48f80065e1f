"""Names, labels and typed status of the resources the operator reads and writes.

Everything that two modules must agree on lives here: the API coordinates of
`VectorPipeline`, KubeRay's `RayJob` and our `SlurmJob`; the labels and
annotation prefix the operator stamps on what it owns; the `VectorPipeline`
status as pydantic models (from which `hack/gen_crds.py` generates the CRD's
status schema, and with which `status.py` builds every status it writes); the
resource-level CEL rules that exist only because of how children are named;
and `Pipeline`, the parsed view of one custom resource that the pure builders
and the status computation take. Nothing here talks to the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, ValidationError

from slurm_bridge.spec import Condition, StatusModel
from vectorpipe_workloads.spec import API_GROUP, API_VERSION, KIND, VectorPipelineSpec

GROUP = API_GROUP
VERSION = API_VERSION
PIPELINE_KIND = KIND
PIPELINE_PLURAL = "vectorpipelines"
PIPELINE_API_VERSION = f"{GROUP}/{VERSION}"

RAY_GROUP = "ray.io"
RAY_VERSION = "v1"
RAYJOB_KIND = "RayJob"
RAYJOB_PLURAL = "rayjobs"

SLURMJOB_KIND = "SlurmJob"
SLURMJOB_PLURAL = "slurmjobs"

LABEL_PIPELINE = "vectorpipe.io/pipeline"
LABEL_PIPELINE_UID = "vectorpipe.io/pipeline-uid"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "vectorpipe-operator"

# Kopf's own bookkeeping annotations. The keys carry an `operator-` prefix so
# they never collide with the slurm-bridge's Kopf state on the SlurmJobs both
# controllers watch, even if the bridge uses the same `vectorpipe.io` prefix.
PERSISTENCE_PREFIX = "vectorpipe.io"
DIFFBASE_KEY = "operator-last-handled-configuration"
TOUCH_KEY = "operator-touch"

CONFIG_MOUNT = "/etc/vectorpipe"
CONFIG_FILE = "pipeline.yaml"

# KubeRay names the RayCluster `<rayjob>-<5 chars>` and refuses cluster names
# over 53 characters, so a RayJob name may have 47; ours is `<pipeline>-etl`.
# RayJob names must also be DNS-1035 labels (start with a letter).
RAYJOB_SUFFIX = "-etl"
MAX_PIPELINE_NAME = 47 - len(RAYJOB_SUFFIX)
RESOURCE_RULES: list[dict[str, str]] = [
    {
        "rule": f"self.metadata.name.size() <= {MAX_PIPELINE_NAME}",
        "message": f"metadata.name must be at most {MAX_PIPELINE_NAME} characters "
        "(the RayJob and RayCluster names derive from it)",
    },
    {
        "rule": "self.metadata.name.matches('^[a-z]')",
        "message": "metadata.name must start with a letter (RayJob names are DNS-1035 labels)",
    },
]
SPEC_IMMUTABLE_RULE = {
    "rule": "self == oldSelf",
    "message": "spec is immutable once a VectorPipeline is created; "
    "delete it and create a new one (or use a new name) to run again",
}

Phase = Literal["Pending", "Embedding", "Clustering", "Succeeded", "Failed"]
PHASES: tuple[Phase, ...] = ("Pending", "Embedding", "Clustering", "Succeeded", "Failed")
TERMINAL: frozenset[str] = frozenset({"Succeeded", "Failed"})

COND_EMBEDDING = "EmbeddingComplete"
COND_CLUSTERING = "ClusteringComplete"
COND_READY = "Ready"


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


class InvalidSpecError(ValueError):
    """The stored spec does not validate against the model (a rule CEL cannot express)."""


@dataclass(frozen=True)
class Pipeline:
    """One VectorPipeline: identity, parsed spec and the status it had when read."""

    name: str
    namespace: str
    uid: str
    spec: VectorPipelineSpec
    generation: int = 1
    status: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Pipeline:
        meta = body.get("metadata") or {}
        try:
            spec = VectorPipelineSpec.model_validate(body.get("spec") or {})
        except ValidationError as e:
            errors = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: "
                + err["msg"].removeprefix("Value error, ")
                for err in e.errors()
            )
            raise InvalidSpecError(errors) from e
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 1),
            spec=spec,
            status=dict(body.get("status") or {}),
        )


def owning_pipeline(meta: Mapping[str, Any]) -> str | None:
    """The name of the VectorPipeline that controls a child, from its owner references."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == PIPELINE_KIND and ref.get("apiVersion") == PIPELINE_API_VERSION:
            return str(ref.get("name"))
    return None


def owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    """Whether `obj` carries an owner reference to the object with this UID."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == owner_uid for r in refs)
