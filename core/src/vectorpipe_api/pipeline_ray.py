"""`spec.ray`: stage 1's KubeRay RayJob, as typed models.

Split out of `vectorpipe_api.pipeline` (which re-exports every name here) to
keep each module small. The fields map onto KubeRay v1.5.0's RayJob: the head
and worker groups, the submitter pod (`submitterPodTemplate`), in-tree
autoscaling, `runtimeEnvYAML`, `deletionStrategy` and the RayJob's own labels
and annotations. As in `pipeline`, a cross-field rule is written twice: as CEL
for the API server and as a pydantic validator for the local runner, with the
same message. The label and annotation keys and the runtime environment's YAML
are checked by pydantic only (CEL cannot parse YAML, and a rule over a map's
keys has no length bound for the API server's cost estimate): the operator
refuses such a spec when it parses it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import yaml
from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vectorpipe_api.base import NAME_PATTERN, QUANTITY_PATTERN, SpecModel, cel_many

# Kubernetes label syntax: an optional DNS-subdomain prefix and "/", then a
# name of at most 63 characters; a value is such a name or empty.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_KEY_PATTERN = rf"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$"
LABEL_VALUE_PATTERN = rf"^({_LABEL_NAME})?$"
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]
AnnotationValue = Annotated[str, StringConstraints(max_length=65536)]


def _check_keys(keys: list[str], what: str) -> None:
    for key in keys:
        prefix = key.rsplit("/", 1)[0] if "/" in key else ""
        if not re.match(LABEL_KEY_PATTERN, key) or len(prefix) > 253:
            raise ValueError(f"{key!r} is not a valid {what} key")


class PodResourcesSpec(SpecModel):
    cpu: str = Field(default="1", pattern=QUANTITY_PATTERN, description="CPU request and limit.")
    memory: str = Field(default="2Gi", pattern=QUANTITY_PATTERN, description="Memory.")
    shared_memory: str | None = Field(
        default=None,
        pattern=QUANTITY_PATTERN,
        description="Size of the memory-backed emptyDir at /dev/shm (Ray's object store). "
        "Default: a third of memory, just above Ray's default object store (30% of the "
        "container's memory), so Ray keeps it in /dev/shm instead of falling back to disk. "
        "Its pages count against the memory limit.",
    )


class ResourcesSpec(PodResourcesSpec):
    ray_start_params: dict[str, str] = Field(
        default_factory=dict,
        description="Extra `ray start` parameters for this group's pods (KubeRay rayStartParams).",
        max_length=64,
    )


WORKERS_RULES = cel_many(
    (
        "!has(self.minReplicas) || self.minReplicas <= self.replicas",
        "workers.minReplicas must not exceed workers.replicas",
    ),
    (
        "!has(self.maxReplicas) || self.replicas <= self.maxReplicas",
        "workers.replicas must not exceed workers.maxReplicas",
    ),
)


class WorkersSpec(ResourcesSpec):
    model_config = ConfigDict(json_schema_extra=WORKERS_RULES)

    replicas: int = Field(default=1, ge=0, le=1000, description="Ray worker pods at the start.")
    min_replicas: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Fewest worker pods the autoscaler keeps; default: replicas.",
    )
    max_replicas: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Most worker pods the autoscaler adds; default: replicas. When above "
        "minReplicas, KubeRay's in-tree autoscaler runs as a sidecar of the head.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> WorkersSpec:
        if self.min_replicas is not None and self.min_replicas > self.replicas:
            raise ValueError("workers.minReplicas must not exceed workers.replicas")
        if self.max_replicas is not None and self.replicas > self.max_replicas:
            raise ValueError("workers.replicas must not exceed workers.maxReplicas")
        return self

    @property
    def lowest(self) -> int:
        return self.replicas if self.min_replicas is None else self.min_replicas

    @property
    def highest(self) -> int:
        return self.replicas if self.max_replicas is None else self.max_replicas

    @property
    def autoscaling(self) -> bool:
        return self.highest > self.lowest


class SubmitterSpec(PodResourcesSpec):
    """The pod of the Kubernetes Job that runs `ray job submit` (KubeRay's K8sJobMode)."""

    cpu: str = Field(default="500m", pattern=QUANTITY_PATTERN, description="CPU request and limit.")
    memory: str = Field(default="1Gi", pattern=QUANTITY_PATTERN, description="Memory.")


class AutoscalerSpec(SpecModel):
    """The autoscaler sidecar KubeRay adds to the head when workers can scale."""

    cpu: str = Field(default="500m", pattern=QUANTITY_PATTERN, description="CPU request and limit.")
    memory: str = Field(default="512Mi", pattern=QUANTITY_PATTERN, description="Memory.")
    idle_timeout_seconds: int = Field(
        default=60,
        ge=1,
        le=86400,
        description="Seconds a worker pod may sit idle before the autoscaler removes it.",
    )


class SharedFilesystemSpec(SpecModel):
    """A shared file system (FSx for Lustre on EKS) mounted in every Ray pod, so
    input and output may be paths under it as well as s3:// URIs."""

    claim_name: str = Field(
        pattern=NAME_PATTERN, max_length=253, description="PersistentVolumeClaim to mount."
    )
    mount_path: str = Field(
        default="/fsx", pattern=r"^/[^\s:]*$", max_length=1024, description="Where it is mounted."
    )
    read_only: bool = Field(default=False, description="Mount read-only (input only).")


class TolerationSpec(SpecModel):
    key: str | None = Field(default=None, max_length=316)
    operator: Literal["Exists", "Equal"] = Field(default="Equal")
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(default=None)


class DeletionCondition(SpecModel):
    job_status: Literal["SUCCEEDED", "FAILED"] = Field(
        description="The Ray job's terminal status that triggers the rule."
    )
    ttl_seconds: int = Field(
        default=0, ge=0, le=2**31 - 1, description="Seconds after that status until the rule acts."
    )


class DeletionRule(SpecModel):
    policy: Literal["DeleteCluster", "DeleteWorkers", "DeleteSelf", "DeleteNone"] = Field(
        description="DeleteWorkers: the worker pods; DeleteCluster: the RayCluster; DeleteSelf: "
        "the RayJob and all it owns; DeleteNone: nothing."
    )
    condition: DeletionCondition


# The rules' TTLs must delete in the order workers, cluster, RayJob (KubeRay v1.5.0).
_ORDER = ("DeleteWorkers", "DeleteCluster", "DeleteSelf")
DELETION_RULES = cel_many(
    (
        "self.deletionRules.all(a, self.deletionRules.exists_one(b, "
        "a.policy == b.policy && a.condition.jobStatus == b.condition.jobStatus))",
        "deletionRules has two rules with the same policy and jobStatus",
    ),
    (
        "self.deletionRules.all(a, self.deletionRules.all(b, "
        "a.condition.jobStatus != b.condition.jobStatus "
        "|| !((a.policy == 'DeleteWorkers' && b.policy in ['DeleteCluster', 'DeleteSelf']) "
        "|| (a.policy == 'DeleteCluster' && b.policy == 'DeleteSelf')) "
        "|| (has(a.condition.ttlSeconds) ? a.condition.ttlSeconds : 0) "
        "<= (has(b.condition.ttlSeconds) ? b.condition.ttlSeconds : 0)))",
        "deletionRules: for one jobStatus, ttlSeconds must not decrease from DeleteWorkers "
        "to DeleteCluster to DeleteSelf",
    ),
)


class DeletionStrategySpec(SpecModel):
    """KubeRay's `deletionStrategy` in its rules form (the legacy onSuccess/onFailure pair is
    deprecated in v1.5.0 and removed in 1.6.0, so it is not offered)."""

    model_config = ConfigDict(json_schema_extra=DELETION_RULES)

    deletion_rules: list[DeletionRule] = Field(
        min_length=1, max_length=8, description="What KubeRay deletes, and when, after the job."
    )

    @model_validator(mode="after")
    def _rules(self) -> DeletionStrategySpec:
        seen: dict[tuple[str, str], int] = {}
        for rule in self.deletion_rules:
            key = (rule.condition.job_status, rule.policy)
            if key in seen:
                raise ValueError("deletionRules has two rules with the same policy and jobStatus")
            seen[key] = rule.condition.ttl_seconds
        for status in ("SUCCEEDED", "FAILED"):
            ttls = [seen[(status, p)] for p in _ORDER if (status, p) in seen]
            if ttls != sorted(ttls):
                raise ValueError(
                    "deletionRules: for one jobStatus, ttlSeconds must not decrease from "
                    "DeleteWorkers to DeleteCluster to DeleteSelf"
                )
        return self


RAY_RULES = cel_many(
    (
        "!has(self.deletionStrategy) "
        "|| (has(self.shutdownAfterJobFinishes) && !self.shutdownAfterJobFinishes)",
        "ray.deletionStrategy needs ray.shutdownAfterJobFinishes: false",
    ),
    (
        "!has(self.deletionStrategy) || !has(self.workers) "
        "|| !self.deletionStrategy.deletionRules.exists(r, r.policy == 'DeleteWorkers') "
        "|| (has(self.workers.maxReplicas) ? self.workers.maxReplicas : self.workers.replicas) "
        "<= (has(self.workers.minReplicas) ? self.workers.minReplicas : self.workers.replicas)",
        "deletionRules: DeleteWorkers does not work with autoscaling workers",
    ),
)


class RaySpec(SpecModel):
    model_config = ConfigDict(json_schema_extra=RAY_RULES)

    image: str = Field(
        default="vectorpipe/ray-worker:0.1.0",
        description="Image with Ray and vectorpipe_workloads.",
        min_length=1,
    )
    ray_version: str = Field(default="2.60.0", description="Ray version in the image.")
    service_account_name: str | None = Field(
        default=None, description="ServiceAccount (IRSA) for the Ray pods.", pattern=NAME_PATTERN
    )
    head: ResourcesSpec = Field(default_factory=ResourcesSpec)
    workers: WorkersSpec = Field(default_factory=WorkersSpec)
    submitter: SubmitterSpec = Field(default_factory=SubmitterSpec)
    autoscaler: AutoscalerSpec = Field(default_factory=AutoscalerSpec)
    shutdown_after_job_finishes: bool = Field(default=True)
    ttl_seconds_after_finished: int = Field(default=600, ge=0, le=604800)
    active_deadline_seconds: int | None = Field(default=None, ge=1, le=2592000)
    backoff_limit: int = Field(default=0, ge=0, le=10, description="RayJob retries.")
    batch_size: int = Field(
        default=65536, ge=256, le=4_194_304, description="Reads per record batch."
    )
    shared_filesystem: SharedFilesystemSpec | None = Field(default=None)
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the Ray pods must run on.", max_length=32
    )
    tolerations: list[TolerationSpec] = Field(
        default_factory=list, description="Taints the Ray pods tolerate.", max_length=32
    )
    runtime_env_yaml: str | None = Field(
        default=None,
        alias="runtimeEnvYAML",
        max_length=65536,
        description="Ray runtime environment of the job, as a YAML mapping (KubeRay "
        "runtimeEnvYAML), e.g. env_vars or pip.",
    )
    deletion_strategy: DeletionStrategySpec | None = Field(
        default=None,
        description="What KubeRay deletes after the job, and when (KubeRay deletionStrategy). "
        "Needs the KubeRay operator's RayJobDeletionPolicy feature gate (alpha in v1.5.0) and "
        "shutdownAfterJobFinishes: false.",
    )
    labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=64,
        description="Labels on the RayJob, e.g. kueue.x-k8s.io/queue-name; the operator's own "
        "labels win on a clash.",
    )
    annotations: dict[str, AnnotationValue] = Field(
        default_factory=dict,
        max_length=64,
        description="Annotations on the RayJob.",
    )

    @field_validator("labels", "annotations")
    @classmethod
    def _keys(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        what = "label" if info.field_name == "labels" else "annotation"
        _check_keys(list(value), what)
        return value

    @field_validator("runtime_env_yaml")
    @classmethod
    def _runtime_env(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            doc = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ValueError(f"ray.runtimeEnvYAML is not YAML: {e}") from e
        if doc is not None and not isinstance(doc, dict):
            raise ValueError("ray.runtimeEnvYAML must be a YAML mapping")
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> RaySpec:
        if self.deletion_strategy is None:
            return self
        if self.shutdown_after_job_finishes:
            raise ValueError("ray.deletionStrategy needs ray.shutdownAfterJobFinishes: false")
        policies = {r.policy for r in self.deletion_strategy.deletion_rules}
        if "DeleteWorkers" in policies and self.workers.autoscaling:
            raise ValueError("deletionRules: DeleteWorkers does not work with autoscaling workers")
        return self
