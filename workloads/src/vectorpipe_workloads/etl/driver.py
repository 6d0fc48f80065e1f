"""Stage 1 on Ray: read files in parallel, embed them batch by batch, write balanced shards.

Ray tasks rather than Ray Data, because the contract needs things Ray Data
does not promise: the same shard count and the same rows in each shard on
every run, shard files named `part-NNNNN.parquet` that appear whole, and a
manifest written only after all of them. The run has three steps:

1. one task per input file streams it in record batches (memory stays
   bounded whatever the file size), embeds each batch and stages it as an
   Arrow IPC chunk under `<output>/_staging/<run>/`; files run in parallel;
2. with every chunk's row count known, shard j takes global rows
   [j*R//S, (j+1)*R//S); one task per shard gathers its slices of the chunks
   and publishes the shard atomically (or writes a Lance fragment);
3. the driver writes `_manifest.json` (the commit point), then removes the
   staging chunks and any stale shards a previous run with more shards left.

A failure anywhere (bad record, S3 error after retries, full disk) stops the
run before step 3, removes the old manifest first thing, and leaves no
manifest, so nothing downstream can mistake a half-written run for a result.
With `embedding.abundance` on, a first pass (`kmer_counting`) counts k-mers over
every file before step 1, and step 1 embeds with the merged counts.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import pyarrow as pa

from vectorpipe_api.pipeline import (
    EmbeddingSpec,
    VectorPipelineSpec,
    composition_dim,
    embedding_dim,
)
from vectorpipe_workloads.etl.embed.abundance import AbundanceProfile
from vectorpipe_workloads.etl.kmer_counting import ProfileMerger, embedder_for, profile_file
from vectorpipe_workloads.etl.shard_writers import (
    commit_lance,
    shard_bounds,
    slices_for_range,
    write_lance_fragment,
    write_parquet_shard,
)
from vectorpipe_workloads.manifest import (
    Manifest,
    ShardInfo,
    SourceInfo,
    manifest_uri,
    write_manifest,
)
from vectorpipe_workloads.shards import (
    LANCE_DATASET,
    make_table,
    schema_description,
    shard_name,
    shard_schema,
)
from vectorpipe_workloads.storage import (
    READ_SUFFIXES,
    InputFile,
    S3Config,
    Store,
    is_s3,
    join,
    local_path,
)

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
MAX_BLOCK_BYTES = 256 << 20


class EmptyInputError(ValueError):
    """The input URI matched files, but they hold no reads at all."""


@dataclass(frozen=True)
class StagedChunk:
    uri: str
    rows: int


@dataclass(frozen=True)
class FileResult:
    index: int
    source: SourceInfo
    chunks: list[StagedChunk]


def sample_label(uri: str, configured: str | None) -> str:
    """The `sample` column: the spec's label, or the file name without read/gzip suffixes."""
    if configured:
        return configured
    name = PurePosixPath(uri).name
    for suffix in (".gz", *READ_SUFFIXES):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def table_to_ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def ipc_to_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def embed_file(
    s3: S3Config,
    file: InputFile,
    index: int,
    staging: str,
    embedding: EmbeddingSpec,
    sample: str | None,
    batch_size: int,
    profile: AbundanceProfile | None = None,
) -> FileResult:
    """Parse one input file batch by batch, embed, and stage each batch (runs as a Ray task)."""
    from vectorpipe_workloads.etl.readers import iter_batches

    store = Store(s3)
    embedder = embedder_for(embedding, profile)
    label = sample_label(file.uri, sample)
    # A batch becomes an (n, dim) float32 block; at k = 8 (dim 32,896) a default
    # batch would need 8.6 GB, so cap each batch's block near MAX_BLOCK_BYTES.
    batch_size = max(256, min(batch_size, MAX_BLOCK_BYTES // (4 * embedder.dim)))
    chunks: list[StagedChunk] = []
    records = 0
    with store.local_copy(file.uri) as path:
        for b, batch in enumerate(iter_batches(path, source=file.uri, batch_size=batch_size)):
            vectors = embedder.embed(batch.seq, batch.offsets)
            table = make_table(batch.ids, label, vectors)
            uri = join(staging, f"{index:05d}-{b:06d}.arrow")
            store.write_bytes(uri, table_to_ipc(table))
            chunks.append(StagedChunk(uri, table.num_rows))
            records += table.num_rows
    return FileResult(index, SourceInfo(file.uri, records, file.size), chunks)


def write_shard(
    s3: S3Config,
    output_uri: str,
    index: int,
    parts: list[tuple[str, int, int]],
    dim: int,
    fmt: str,
) -> tuple[ShardInfo, str | None]:
    """Gather a shard's slices of the staged chunks and write it (runs as a Ray task)."""
    store = Store(s3)
    tables = [ipc_to_table(store.read_bytes(uri)).slice(lo, hi - lo) for uri, lo, hi in parts]
    table = pa.concat_tables(tables) if tables else shard_schema(dim).empty_table()
    if fmt == "lance":
        fragment, size = write_lance_fragment(store, output_uri, table)
        return ShardInfo(path=LANCE_DATASET, rows=table.num_rows, bytes=size), fragment
    return write_parquet_shard(store, output_uri, index, table), None


def _get(ref: Any) -> Any:
    """ray.get, re-raising a task's own exception (e.g. InputFormatError) rather than Ray's wrapper."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = e.cause
        if isinstance(cause, Exception):
            raise cause from None
        raise


def _settle(refs: list[Any], timeout: float = 120.0) -> None:
    """Cancel the tasks behind `refs` and wait (bounded) until none is running."""
    import ray

    for ref in refs:
        try:
            ray.cancel(ref)
        except Exception:  # already finished, or the cluster is going away
            continue
    if refs:
        ray.wait(refs, num_returns=len(refs), timeout=timeout)


def _remote(fn: Callable[..., Any], **options: Any) -> Any:
    import ray

    return ray.remote(**options)(fn)


def run_etl(
    spec: VectorPipelineSpec,
    pipeline: str = "",
    progress: Progress | None = None,
    num_cpus_per_task: float = 1.0,
    run: str = "",
) -> Manifest:
    """Run stage 1 on the Ray cluster `ray.init()` already connected to; return the manifest.

    `run` (`<pipeline uid>[/<runId>]` on Kubernetes) goes into the manifest, so
    the operator trusts only a commit point its own run wrote.
    """
    import ray

    started = time.perf_counter()
    s3 = S3Config.from_env(spec.s3.endpoint_url, spec.s3.region)
    store = Store(s3)
    output = spec.output.uri
    dim = embedding_dim(spec.embedding)
    report = progress or (lambda stage, done, total: None)

    # Withdraw the previous run's commit point before touching anything else.
    store.delete(manifest_uri(output))
    files = store.list_inputs(spec.input.uri)
    if not files:
        raise FileNotFoundError(f"no input files match {spec.input.uri}")
    staging = join(output, f"_staging/{uuid.uuid4().hex[:12]}")
    embed_task = _remote(embed_file, num_cpus=num_cpus_per_task, max_retries=2)
    shard_task = _remote(write_shard, num_cpus=num_cpus_per_task, max_retries=2)
    pending: list[Any] = []
    shard_refs: list[Any] = []
    try:
        profile = None
        if spec.embedding.abundance.enabled:
            profile = ray.put(_first_pass(spec, s3, files, report, num_cpus_per_task, pending))
        pending = [
            embed_task.remote(
                s3, f, i, staging, spec.embedding, spec.input.sample, spec.ray.batch_size, profile
            )
            for i, f in enumerate(files)
        ]
        results: list[FileResult] = []
        report("embed", 0, len(files))
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            results.append(_get(done[0]))
            report("embed", len(results), len(files))
        results.sort(key=lambda r: r.index)
        chunks = [c for r in results for c in r.chunks]
        total = sum(c.rows for c in chunks)
        if total == 0:
            raise EmptyInputError(f"{spec.input.uri}: no reads in {len(files)} file(s)")

        bounds = shard_bounds(total, spec.output.shards)
        for j, (start, end) in enumerate(bounds):
            parts = [
                (chunks[s.chunk].uri, s.lo, s.hi)
                for s in slices_for_range([c.rows for c in chunks], start, end)
            ]
            shard_refs.append(shard_task.remote(s3, output, j, parts, dim, spec.output.format))
        written: list[tuple[ShardInfo, str | None]] = []
        report("shards", 0, len(bounds))
        for j, ref in enumerate(shard_refs):
            written.append(_get(ref))
            report("shards", j + 1, len(bounds))
    except BaseException:
        # One task failed (e.g. a corrupt file): the others may still be writing
        # chunks or shards. Stop them and wait until they have, so nothing lands
        # in staging after it is removed below.
        _settle([*pending, *shard_refs])
        raise
    finally:
        store.delete_prefix(staging)

    shards = [info for info, _ in written]
    if spec.output.format == "lance":
        ids = commit_lance(store, output, [f for _, f in written if f is not None], dim)
        shards = [
            ShardInfo(s.path, s.rows, s.bytes, fragment=i) for s, i in zip(shards, ids, strict=True)
        ]
    manifest = Manifest(
        format=spec.output.format,
        dim=dim,
        rows=total,
        embedding=spec.embedding.model_dump(by_alias=True),
        shards=shards,
        sources=[r.source for r in results],
        schema=schema_description(dim),
        pipeline=pipeline,
        run=run,
        seconds=round(time.perf_counter() - started, 3),
    )
    write_manifest(store, output, manifest)
    _remove_stale_shards(store, output, spec.output.shards)
    store.delete_prefix(join(output, "_staging"))
    return manifest


def _first_pass(
    spec: VectorPipelineSpec,
    s3: S3Config,
    files: list[InputFile],
    report: Progress,
    num_cpus: float,
    pending: list[Any],
) -> AbundanceProfile:
    """Count k-mers over every file (one task each) and merge as results arrive.

    `pending` is the caller's list of outstanding tasks, filled here so that a
    failure settles them like step 1's.
    """
    import ray

    task = _remote(profile_file, num_cpus=num_cpus, max_retries=2)
    merger = ProfileMerger(spec.embedding.abundance, composition_dim(spec.embedding))
    pending[:] = [task.remote(s3, f, spec.embedding, spec.ray.batch_size) for f in files]
    report("profile", 0, len(files))
    done_count = 0
    while pending:
        done, rest = ray.wait(pending, num_returns=1)
        pending[:] = rest
        merger.add(_get(done[0]))
        done_count += 1
        report("profile", done_count, len(files))
    profile = merger.profile()
    log.info(
        "abundance: %d sampled k-mers counted, background %.3f, column scale %.4g",
        profile.added,
        profile.background,
        profile.scale,
    )
    return profile


def _remove_stale_shards(store: Store, output: str, shards: int) -> None:
    """Drop top-level `part-NNNNN.parquet` files beyond this run's count, left by an earlier run."""
    keep = {shard_name(j) for j in range(shards)}
    base = output if is_s3(output) else str(local_path(output))
    for uri in store.list_prefix(output):
        name = uri.rsplit("/", 1)[-1]
        stale = name.startswith("part-") and name.endswith(".parquet") and name not in keep
        # Clustering outputs under assignments/ share the naming; leave them alone.
        if stale and uri == join(base, name):
            store.delete(uri)
