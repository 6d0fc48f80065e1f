"""`_manifest.json`: the commit point between stage 1 and stage 2.

The manifest is written last, after every shard is in place, and names the
shards with their row and byte counts, the embedding that made them and the
source files they came from. No manifest, no stage 2: readers of a run trust
only what a manifest lists, so anything else under the output prefix (a shard
from a crashed run, a temporary file) is invisible to them.

The module also holds the rest of what passes between the stages and whoever
starts them: where stage 2 writes (`clustering_uri`) and its command line
(`kmeans_argv`), which the local runner and the operator both use. It stays
light (standard library and `storage` only) because the operator imports it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vectorpipe_workloads.storage import Store, join

if TYPE_CHECKING:
    from vectorpipe_api.pipeline import VectorPipelineSpec

MANIFEST_NAME = "_manifest.json"
KMEANS_MODULE = "vectorpipe_workloads.kmeans"
CLUSTERING_DIR = "clustering"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ShardInfo:
    path: str  # relative to the output URI
    rows: int
    bytes: int
    fragment: int | None = None  # Lance fragment id when format is lance


@dataclass(frozen=True)
class SourceInfo:
    uri: str
    records: int
    bytes: int


@dataclass(frozen=True)
class Manifest:
    format: str
    dim: int
    rows: int
    embedding: dict[str, Any]
    shards: list[ShardInfo]
    sources: list[SourceInfo]
    schema: dict[str, str]
    pipeline: str = ""
    run: str = ""  # the run that wrote it: `<pipeline uid>[/<runId>]` (empty: a local run)
    seconds: float = 0.0
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        if raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported manifest format_version {raw.get('format_version')!r}")
        raw["shards"] = [ShardInfo(**s) for s in raw["shards"]]
        raw["sources"] = [SourceInfo(**s) for s in raw["sources"]]
        manifest = cls(**raw)
        if sum(s.rows for s in manifest.shards) != manifest.rows:
            raise ValueError("manifest is inconsistent: shard rows do not sum to rows")
        return manifest

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)


def manifest_uri(output_uri: str) -> str:
    return join(output_uri, MANIFEST_NAME)


def clustering_uri(output_uri: str) -> str:
    """Where stage 2 writes (assignments/, centroids.parquet, metrics.json, _SUCCESS):
    a folder of its own, so a rerun of either stage never touches the other's files."""
    return join(output_uri, CLUSTERING_DIR + "/")


def write_manifest(store: Store, output_uri: str, manifest: Manifest) -> str:
    uri = manifest_uri(output_uri)
    store.write_bytes(uri, manifest.to_json().encode())
    return uri


def read_manifest(store: Store, uri: str) -> Manifest:
    """Read a manifest given its own URI or the output URI that holds it."""
    if not uri.endswith(".json"):
        uri = manifest_uri(uri)
    return Manifest.from_json(store.read_bytes(uri).decode())


def kmeans_argv(spec: VectorPipelineSpec, manifest_uri: str) -> list[str]:
    """Stage 2's command line after the interpreter: `python <argv>` runs the k-means.

    The one builder of it: the local runner puts `mpirun ... sys.executable` in
    front, the operator its Slurm job's `mpirun ... python`. S3 settings always
    travel as flags, so stage 2 reads them the same way on every path.
    """
    app = spec.hpc.app
    argv = [
        "-m", KMEANS_MODULE,
        "--manifest", manifest_uri,
        "--output", clustering_uri(spec.output.uri),
        "--clusters", str(app.clusters),
        "--max-iterations", str(app.max_iterations),
        "--tolerance", repr(app.tolerance),
        "--seed", str(app.seed),
        "--n-init", str(app.n_init),
    ]  # fmt: skip
    if app.csv:
        argv.append("--csv")
    if spec.s3.endpoint_url:
        argv += ["--s3-endpoint-url", spec.s3.endpoint_url]
    if spec.s3.region:
        argv += ["--s3-region", spec.s3.region]
    return argv
