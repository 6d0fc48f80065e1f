"""The `SlurmJob` resource as typed models: the one source of truth for its CRD.

A `SlurmJob` is any batch job submitted from Kubernetes to a Slurm cluster:
either a whole batch `script`, or a `command` that the bridge starts on the
allocation under an MPI `launcher` (mpirun, srun, or none). `slurm` says how
to reach the cluster (slurmrestd + JWT from a Secret, or the local `sbatch`
CLI when no endpoint is set). The VectorPipeline operator creates one for
stage 2; the slurm-bridge controller submits it and mirrors the Slurm job into
`status`. As in `vectorpipe_api.pipeline`, every cross-field rule is written
twice, as CEL for the API server (`hack/gen_crds.py` copies it into the CRD)
and as a pydantic validator for code that builds or reads these objects
without an API server. Only pydantic is imported here, so the operator, the bridge and the CRD
generator share the models without importing each other.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from vectorpipe_api.base import (
    NAME_PATTERN,
    TIME_LIMIT_PATTERN,
    Condition,
    SpecModel,
    StatusModel,
    cel_many,
)

SLURM_NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
REST_VERSION_PATTERN = r"^v0\.0\.[0-9]+$"

Launcher = Literal["mpirun", "srun", "none"]
SlurmJobPhase = Literal["Pending", "Submitted", "Running", "Succeeded", "Failed", "Cancelled"]
TERMINAL_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed", "Cancelled"})

# A submitted Slurm job cannot be changed, so neither can its spec; the CRD
# enforces this with a CEL transition rule on `spec`.
SPEC_IMMUTABLE_RULE = {
    "rule": "self == oldSelf",
    "message": "spec is immutable once a SlurmJob is created; delete it and create a new one",
}


class SecretKeySelector(SpecModel):
    """One key of a Secret in the SlurmJob's namespace."""

    name: str = Field(pattern=NAME_PATTERN, max_length=253, description="Secret name.")
    key: str = Field(min_length=1, max_length=253, description="Key within the Secret.")


class TokenSecretRef(SecretKeySelector):
    key: str = Field(default="token", min_length=1, max_length=253, description="Key of the JWT.")


class CaBundleSecretRef(SecretKeySelector):
    key: str = Field(
        default="ca.crt", min_length=1, max_length=253, description="Key of the PEM CA bundle."
    )


CONNECTION_RULES = cel_many(
    (
        "!has(self.endpoint) || has(self.tokenSecretRef)",
        "tokenSecretRef is required when endpoint is set",
    ),
    (
        "has(self.endpoint) || (!has(self.caBundleSecretRef) && !self.insecureSkipVerify)",
        "caBundleSecretRef and insecureSkipVerify need an endpoint",
    ),
)


class SlurmConnection(SpecModel):
    """How to reach Slurm: slurmrestd with a JWT, or `sbatch` on the bridge's host."""

    model_config = ConfigDict(json_schema_extra=CONNECTION_RULES)

    endpoint: str | None = Field(
        default=None,
        description="slurmrestd URL, e.g. https://head-node:8082. Unset: the bridge runs sbatch.",
        pattern=r"^https?://.+$",
        max_length=2048,
    )
    token_secret_ref: TokenSecretRef | None = Field(
        default=None, description="Secret key holding the slurmrestd JWT (X-SLURM-USER-TOKEN)."
    )
    user: str = Field(
        default="vectorpipe",
        description="Slurm user the token belongs to (X-SLURM-USER-NAME).",
        pattern=r"^[a-z_][a-z0-9_.\-]*$",
        max_length=64,
    )
    api_version: str | None = Field(
        default=None,
        description="slurmrestd API version, e.g. v0.0.38; unset: detected from /openapi/v3.",
        pattern=REST_VERSION_PATTERN,
        max_length=16,
    )
    ca_bundle_secret_ref: CaBundleSecretRef | None = Field(
        default=None, description="Secret key holding the CA bundle that signed slurmrestd's cert."
    )
    insecure_skip_verify: bool = Field(
        default=False, description="Skip TLS verification of slurmrestd (tests only)."
    )

    @model_validator(mode="after")
    def _cross_field(self) -> SlurmConnection:
        if self.endpoint is not None and self.token_secret_ref is None:
            raise ValueError("tokenSecretRef is required when endpoint is set")
        if self.endpoint is None and (self.ca_bundle_secret_ref or self.insecure_skip_verify):
            raise ValueError("caBundleSecretRef and insecureSkipVerify need an endpoint")
        return self


JOB_RULES = cel_many(
    (
        "has(self.script) != has(self.command)",
        "exactly one of script or command must be set",
    ),
    (
        "has(self.command) || (!has(self.launcher) && !has(self.launcherArgs))",
        "launcher and launcherArgs are only valid with command; a script starts its own ranks",
    ),
)


class SlurmJobSpec(SpecModel):
    """A Slurm batch job: what to run, on how much of the cluster, and where Slurm is."""

    model_config = ConfigDict(json_schema_extra=JOB_RULES)

    script: str | None = Field(
        default=None,
        description="A whole batch script (starting with #!); its #SBATCH lines are kept.",
        min_length=1,
        max_length=262144,
    )
    command: list[str] | None = Field(
        default=None,
        description="argv to run on the allocation under `launcher`, e.g. [python, -m, app].",
        min_length=1,
        max_length=256,
    )
    launcher: Launcher | None = Field(
        default=None,
        description="How `command` starts its ranks: mpirun (default), srun, or none (one task).",
    )
    launcher_args: list[str] | None = Field(
        default=None,
        description="Extra launcher arguments, e.g. [--oversubscribe].",
        max_length=64,
    )
    nodes: int = Field(default=1, ge=1, le=10000, description="Nodes (sbatch --nodes).")
    ntasks_per_node: int = Field(default=1, ge=1, le=1024, description="MPI ranks per node.")
    cpus_per_task: int = Field(default=1, ge=1, le=1024, description="CPUs per rank.")
    partition: str | None = Field(default=None, max_length=64, pattern=SLURM_NAME_PATTERN)
    time_limit: str = Field(
        default="01:00:00",
        pattern=TIME_LIMIT_PATTERN,
        description="Wall-clock limit: minutes, HH:MM:SS or D-HH:MM:SS.",
    )
    account: str | None = Field(default=None, max_length=64, pattern=SLURM_NAME_PATTERN)
    qos: str | None = Field(default=None, max_length=64, pattern=SLURM_NAME_PATTERN)
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables of the job.",
        max_length=256,
    )
    working_directory: str | None = Field(
        default=None,
        description="Absolute working directory on the cluster.",
        pattern=r"^/.*$",
        max_length=4096,
    )
    output: str | None = Field(
        default=None,
        description="stdout path on the cluster (Slurm patterns such as %j allowed).",
        pattern=r"^/.*$",
        max_length=4096,
    )
    error: str | None = Field(
        default=None,
        description="stderr path on the cluster; unset: with stdout.",
        pattern=r"^/.*$",
        max_length=4096,
    )
    slurm: SlurmConnection = Field(default_factory=SlurmConnection)
    backoff_limit: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Resubmissions after a failed Slurm job (node failure, preemption).",
    )

    @model_validator(mode="after")
    def _cross_field(self) -> SlurmJobSpec:
        if (self.script is None) == (self.command is None):
            raise ValueError("exactly one of script or command must be set")
        if self.command is None and (self.launcher is not None or self.launcher_args is not None):
            raise ValueError(
                "launcher and launcherArgs are only valid with command; "
                "a script starts its own ranks"
            )
        for name in self.environment:
            if not re.match(ENV_NAME_PATTERN, name):
                raise ValueError(f"environment variable name {name!r} is not valid")
        return self

    @property
    def ranks(self) -> int:
        return self.nodes * self.ntasks_per_node

    @property
    def effective_launcher(self) -> Launcher:
        return self.launcher or "mpirun"


class SlurmJobStatus(StatusModel):
    """What the bridge observed of the Slurm job; written only by the slurm-bridge."""

    phase: SlurmJobPhase | None = Field(default=None, description="Lifecycle phase.")
    observed_generation: int | None = Field(default=None, ge=0)
    job_id: int | None = Field(default=None, ge=0, description="Slurm job id.")
    state: str | None = Field(default=None, description="Slurm job state, e.g. RUNNING, COMPLETED.")
    reason: str | None = Field(default=None, description="Slurm's state reason or the bridge's.")
    message: str | None = Field(default=None, description="Human-readable details.")
    exit_code: int | None = Field(default=None, description="Exit code of the batch step.")
    nodes: str | None = Field(default=None, description="Allocated nodes (Slurm nodelist).")
    submit_attempts: int | None = Field(default=None, ge=0, description="Submissions so far.")
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    end_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
