"""Reading stage 1's commit point, `_manifest.json`, at the pipeline's output URI.

The operator trusts only the manifest: a RayJob that says SUCCEEDED is not
proof that shards exist. The file is read through the workloads' own
`Store` and `read_manifest` (S3 endpoint and region from `spec.s3`, the
default AWS credential chain, i.e. IRSA on EKS) so the operator and the
workloads can never disagree about its format. Faults are sorted into
transient (`TransientError`: object not visible yet or written by another run,
S3 throttling/5xx, a connection error) and permanent (`InvalidStateError`: unreadable or inconsistent JSON, or a
manifest that contradicts the spec, e.g. another dimension).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from vectorpipe_api.pipeline import VectorPipelineSpec
from vectorpipe_kopf.errors import InvalidStateError, TransientError
from vectorpipe_operator.status import ManifestView
from vectorpipe_workloads.manifest import Manifest, manifest_uri, read_manifest
from vectorpipe_workloads.storage import S3Config, Store

StoreFactory = Callable[[S3Config], Store]
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})


def _store(spec: VectorPipelineSpec, factory: StoreFactory) -> Store:
    return factory(S3Config(endpoint_url=spec.s3.endpoint_url, region=spec.s3.region))


def _classify_s3(uri: str, exc: Exception) -> TransientError | None:
    """A TransientError for botocore's errors (imported lazily: paths need no boto)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - boto3 is a dependency of the operator extra
        return None
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in MISSING_CODES:
            return TransientError("ManifestNotVisible", f"no manifest at {uri} yet")
        return TransientError("StorageError", f"reading {uri}: {code or 'error'}: {exc}")
    if isinstance(exc, BotoCoreError):
        return TransientError("StorageError", f"reading {uri}: {exc}")
    return None


def read_committed_manifest(
    spec: VectorPipelineSpec, run: str, factory: StoreFactory = Store
) -> ManifestView:
    """The manifest stage 1 committed for this run of this spec, checked against the spec.

    A manifest another run wrote (a previous `spec.runId`, or a deleted and
    re-created pipeline of the same name) is not this run's commit point: it
    reads as not there yet.
    """
    uri = manifest_uri(spec.output.uri)
    try:
        manifest: Manifest = read_manifest(_store(spec, factory), uri)
    except FileNotFoundError:
        raise TransientError("ManifestNotVisible", f"no manifest at {uri} yet") from None
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise InvalidStateError("ManifestInvalid", f"{uri}: {e}") from e
    except OSError as e:
        raise TransientError("StorageError", f"reading {uri}: {e}") from e
    except Exception as e:
        retry = _classify_s3(uri, e)
        if retry is None:
            raise
        raise retry from e
    if manifest.run and manifest.run != run:
        raise TransientError(
            "ManifestNotVisible", f"{uri} was written by run {manifest.run!r}, not this run"
        )
    if manifest.dim != spec.dim:
        raise InvalidStateError(
            "ManifestInvalid", f"{uri}: dimension {manifest.dim} but the spec gives {spec.dim}"
        )
    if manifest.format != spec.output.format:
        raise InvalidStateError(
            "ManifestInvalid",
            f"{uri}: format {manifest.format!r} but the spec asks for {spec.output.format!r}",
        )
    return ManifestView(
        uri=uri,
        rows=manifest.rows,
        shards=len(manifest.shards),
        dim=manifest.dim,
        format=manifest.format,
        bytes=manifest.bytes,
    )
