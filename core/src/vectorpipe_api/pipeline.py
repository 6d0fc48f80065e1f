"""The `VectorPipeline` spec as typed models: the one source of truth for its CRD.

These pydantic models are what `vectorpipe run pipeline.yaml` validates a
pipeline with, what the operator parses a custom resource into, and what
`hack/gen_crds.py` turns into the CRD's OpenAPI schema. Cross-field rules are
written twice on purpose, once as CEL (`x-kubernetes-validations`, enforced by
the API server at admission) and once as a pydantic validator (enforced by the
local runner, which has no API server); `tests/unit/test_spec_pipeline.py`
runs the same cases through both paths. `spec.ray` is in
`vectorpipe_api.pipeline_ray` (re-exported here); the status the operator
writes is in `vectorpipe_api.pipeline_status`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vectorpipe_api.base import (
    NAME_PATTERN,
    TIME_LIMIT_PATTERN,
    URI_PATTERN,
    SpecModel,
    cel_many,
)
from vectorpipe_api.meta import API_VERSION, PIPELINE_KIND
from vectorpipe_api.pipeline_names import MAX_RUN_ID, run_identity

# spec.ray lives in its own module; its models stay importable from here.
from vectorpipe_api.pipeline_ray import AutoscalerSpec as AutoscalerSpec
from vectorpipe_api.pipeline_ray import DeletionCondition as DeletionCondition
from vectorpipe_api.pipeline_ray import DeletionRule as DeletionRule
from vectorpipe_api.pipeline_ray import DeletionStrategySpec as DeletionStrategySpec
from vectorpipe_api.pipeline_ray import PodResourcesSpec as PodResourcesSpec
from vectorpipe_api.pipeline_ray import RaySpec as RaySpec
from vectorpipe_api.pipeline_ray import ResourcesSpec as ResourcesSpec
from vectorpipe_api.pipeline_ray import SharedFilesystemSpec as SharedFilesystemSpec
from vectorpipe_api.pipeline_ray import SubmitterSpec as SubmitterSpec
from vectorpipe_api.pipeline_ray import TolerationSpec as TolerationSpec
from vectorpipe_api.pipeline_ray import WorkersSpec as WorkersSpec


class SecretNameRef(SpecModel):
    name: str = Field(pattern=NAME_PATTERN, max_length=253)


class S3Options(SpecModel):
    """How to reach S3. Empty means the default AWS chain (IRSA on EKS)."""

    endpoint_url: str | None = Field(
        default=None,
        description="S3 API endpoint, e.g. http://127.0.0.1:9000 for an S3-compatible server.",
        pattern=r"^https?://.+$",
    )
    region: str | None = Field(default=None, description="AWS region of the buckets.")
    allowed_buckets: list[str] = Field(
        default_factory=list,
        description="If set, input and output URIs must name one of these buckets.",
        max_length=64,
    )
    credentials_secret_ref: SecretNameRef | None = Field(
        default=None,
        description="A Secret in the pipeline's namespace whose keys (AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, optionally AWS_SESSION_TOKEN) become the environment of the "
        "Ray pods (envFrom), for S3-compatible stores without IRSA. Stage 2 takes its "
        "identity from the compute nodes (instance role) or the bridge's job environment.",
    )


class InputSpec(SpecModel):
    uri: str = Field(
        description="Where the reads are: s3://bucket/prefix/, file:///path, or a mounted path "
        "(FSx for Lustre). A directory or prefix takes every FASTQ/FASTA (.gz ok) under it; "
        "a glob (*, ?) is allowed in the last path segment.",
        pattern=URI_PATTERN,
        max_length=2048,
    )
    format: Literal["auto", "fastq", "fasta"] = Field(
        default="auto", description="Read format; auto detects per file."
    )
    sample: str | None = Field(
        default=None,
        description="Sample label stored with every row; default: the file's name.",
        max_length=253,
    )


EMBEDDING_RULES = cel_many(
    (
        "self.method != 'kmer' || (self.k >= 2 && self.k <= 8)",
        "kmer embeddings need 2 <= k <= 8",
    ),
    ("self.method == 'kmer' || self.transform == 'none'", "transform is only valid for kmer"),
    ("self.method == 'hashed' || !has(self.dim)", "dim is only valid for method hashed"),
    (
        "self.method == 'minhash' || !has(self.sketchSize)",
        "sketchSize is only valid for method minhash",
    ),
)


class AbundanceSpec(SpecModel):
    enabled: bool = Field(
        default=True,
        description="Append a read-abundance column (log of how often the read's k-mers occur "
        "in the whole input); stage 1 then reads the input twice.",
    )
    k: int = Field(default=21, ge=11, le=31, description="k-mer length counted for abundance.")
    scaled: int = Field(
        default=8, ge=1, le=4096, description="Count only the 1/scaled of k-mers a hash selects."
    )
    table_bits: int = Field(
        default=22,
        ge=16,
        le=28,
        description="The count table has 2^tableBits cells (4 bytes each); raise it, or scaled, "
        "when reads x (read length - k) / scaled approaches the cell count.",
    )
    weight: float = Field(
        default=1.0,
        gt=0.0,
        le=100.0,
        description="Column scale, in units of the composition vectors' total standard deviation.",
    )


class EmbeddingSpec(SpecModel):
    model_config = ConfigDict(json_schema_extra=EMBEDDING_RULES)

    method: Literal["kmer", "hashed", "minhash"] = Field(
        default="kmer",
        description="kmer: canonical k-mer frequencies; hashed: LSHVec-style hashed k-mers; "
        "minhash: bottom-s sketch as a vector.",
    )
    k: int = Field(default=4, ge=2, le=31, description="k-mer length (kmer: 2..8).")
    canonical: bool = Field(default=True, description="Count a k-mer with its reverse complement.")
    transform: Literal["none", "clr"] = Field(
        default="none", description="clr: centred log-ratio of k-mer counts (kmer only)."
    )
    dim: int | None = Field(default=None, ge=2, le=65536, description="hashed: vector length.")
    sketch_size: int | None = Field(
        default=None, ge=2, le=4096, description="minhash: sketch size s."
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Hash seed.")
    abundance: AbundanceSpec = Field(default_factory=AbundanceSpec)

    @model_validator(mode="after")
    def _cross_field(self) -> EmbeddingSpec:
        if self.method == "kmer" and not 2 <= self.k <= 8:
            raise ValueError("kmer embeddings need 2 <= k <= 8")
        if self.method != "kmer" and self.transform != "none":
            raise ValueError("transform is only valid for kmer")
        if self.method != "hashed" and self.dim is not None:
            raise ValueError("dim is only valid for method hashed")
        if self.method != "minhash" and self.sketch_size is not None:
            raise ValueError("sketchSize is only valid for method minhash")
        return self


class OutputSpec(SpecModel):
    uri: str = Field(
        description="Where shards, the manifest and clustering results go (s3:// or a path).",
        pattern=URI_PATTERN,
        max_length=2048,
    )
    format: Literal["parquet", "lance"] = Field(default="parquet", description="Shard format.")
    shards: int = Field(
        default=8, ge=1, le=100000, description="Number of shards; the same every run."
    )


class SecretKeyRef(SpecModel):
    name: str = Field(pattern=NAME_PATTERN, max_length=253)
    key: str = Field(default="token", min_length=1, max_length=253)


class CaBundleRef(SpecModel):
    name: str = Field(pattern=NAME_PATTERN, max_length=253)
    key: str = Field(default="ca.crt", min_length=1, max_length=253)


class SlurmSpec(SpecModel):
    endpoint: str | None = Field(
        default=None,
        description="slurmrestd URL, e.g. https://head-node:8082. Unset: run locally.",
        pattern=r"^https?://.+$",
    )
    token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret holding the slurmrestd JWT."
    )
    ca_bundle_secret_ref: CaBundleRef | None = Field(
        default=None,
        description="Secret holding the CA bundle that signed slurmrestd's certificate "
        "(ParallelCluster's post-install makes a private CA).",
    )
    user: str = Field(default="vectorpipe", description="Slurm user the token belongs to.")
    partition: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    nodes: int = Field(default=1, ge=1, le=10000)
    ntasks_per_node: int = Field(default=2, ge=1, le=1024)
    cpus_per_task: int = Field(default=1, ge=1, le=1024)
    time_limit: str = Field(default="01:00:00", pattern=TIME_LIMIT_PATTERN)
    account: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    qos: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    backoff_limit: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Resubmissions of the k-means job after a Slurm failure (node failure, "
        "non-zero exit, time limit); passed to the SlurmJob.",
    )

    @property
    def ranks(self) -> int:
        return self.nodes * self.ntasks_per_node


class AppSpec(SpecModel):
    name: Literal["kmeans"] = Field(default="kmeans")
    clusters: int = Field(default=20, ge=2, le=100000)
    max_iterations: int = Field(default=100, ge=1, le=100000)
    tolerance: float = Field(default=1e-4, ge=0.0, le=1.0)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    n_init: int = Field(
        default=8,
        ge=1,
        le=64,
        description="k-means++ starts tried on the init sample; the one whose Lloyd run "
        "on the sample ends with the lowest inertia seeds the full run.",
    )
    csv: bool = Field(default=False, description="Also write the seed's CSV files.")


class HpcSpec(SpecModel):
    slurm: SlurmSpec = Field(default_factory=SlurmSpec)
    app: AppSpec = Field(default_factory=AppSpec)


PIPELINE_RULES = cel_many(
    ("self.input.uri != self.output.uri", "output.uri must differ from input.uri"),
    (
        "!has(self.hpc) || !has(self.hpc.slurm) || !has(self.hpc.slurm.endpoint) "
        "|| has(self.hpc.slurm.tokenSecretRef)",
        "hpc.slurm.tokenSecretRef is required when hpc.slurm.endpoint is set",
    ),
    (
        "!has(self.hpc) || !has(self.hpc.slurm) || !has(self.hpc.slurm.caBundleSecretRef) "
        "|| has(self.hpc.slurm.endpoint)",
        "hpc.slurm.caBundleSecretRef needs hpc.slurm.endpoint",
    ),
)


class VectorPipelineSpec(SpecModel):
    model_config = ConfigDict(json_schema_extra=PIPELINE_RULES)

    run_id: str | None = Field(
        default=None,
        description="Names one run of this pipeline. The spec is frozen during a run; changing "
        "runId (with or without other edits) stops the current run and starts a new one, "
        "which is how a GitOps edit re-runs a pipeline.",
        pattern=NAME_PATTERN,
        max_length=MAX_RUN_ID,
    )
    input: InputSpec
    embedding: EmbeddingSpec = Field(default_factory=EmbeddingSpec)
    output: OutputSpec
    s3: S3Options = Field(default_factory=S3Options)
    ray: RaySpec = Field(default_factory=RaySpec)
    hpc: HpcSpec = Field(default_factory=HpcSpec)

    @model_validator(mode="after")
    def _cross_field(self) -> VectorPipelineSpec:
        if self.input.uri == self.output.uri:
            raise ValueError("output.uri must differ from input.uri")
        slurm = self.hpc.slurm
        if slurm.endpoint is not None and slurm.token_secret_ref is None:
            raise ValueError("hpc.slurm.tokenSecretRef is required when hpc.slurm.endpoint is set")
        if slurm.endpoint is None and slurm.ca_bundle_secret_ref is not None:
            raise ValueError("hpc.slurm.caBundleSecretRef needs hpc.slurm.endpoint")
        for uri in (self.input.uri, self.output.uri):
            bucket = s3_bucket(uri)
            if self.s3.allowed_buckets and bucket is None:
                # A path names no bucket, so it cannot be one of the allowed ones.
                raise ValueError(f"{uri!r} is not an s3:// URI, but s3.allowedBuckets is set")
            if bucket and self.s3.allowed_buckets and bucket not in self.s3.allowed_buckets:
                raise ValueError(f"bucket {bucket!r} is not in s3.allowedBuckets")
        return self

    @property
    def dim(self) -> int:
        return embedding_dim(self.embedding)


def s3_bucket(uri: str) -> str | None:
    """The bucket of an s3:// URI, or None for a path."""
    if not uri.startswith("s3://"):
        return None
    return uri[5:].split("/", 1)[0]


def embedding_dim(e: EmbeddingSpec) -> int:
    """Vector length an embedding spec produces (derived, never configured for kmer)."""
    return composition_dim(e) + (1 if e.abundance.enabled else 0)


def composition_dim(e: EmbeddingSpec) -> int:
    """Length of the method's own vector, before any abundance column."""
    if e.method == "kmer":
        if not e.canonical:
            return int(4**e.k)
        palindromes = 4 ** (e.k // 2) if e.k % 2 == 0 else 0
        return int((4**e.k + palindromes) // 2)
    if e.method == "hashed":
        return e.dim if e.dim is not None else 100
    return e.sketch_size if e.sketch_size is not None else 64


class PipelineDocument(BaseModel):
    """A whole `VectorPipeline` object as a user writes it in YAML."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: VectorPipelineSpec

    @model_validator(mode="after")
    def _kind(self) -> PipelineDocument:
        if self.api_version != API_VERSION:
            raise ValueError(f"apiVersion must be {API_VERSION}")
        if self.kind != PIPELINE_KIND:
            raise ValueError(f"kind must be {PIPELINE_KIND}")
        name = self.metadata.get("name", "")
        if not isinstance(name, str) or not re.match(NAME_PATTERN, name) or len(name) > 63:
            raise ValueError("metadata.name must be a DNS-1123 label of at most 63 characters")
        return self

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def run(self) -> str:
        """This run's identity (`run_identity`), or "" for a file that names no UID."""
        uid = self.metadata.get("uid")
        return run_identity(str(uid), self.spec.run_id) if uid else ""
