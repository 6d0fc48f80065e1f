"""Loading a `VectorPipeline` YAML file for the local runner, with messages a person can act on.

The file is the same document a user would `kubectl apply`. Locally there is
no API server, so the spec models' validators stand in for the CRD's schema
and CEL rules; errors are rendered one per line as `spec.<path>: <message>`.
Relative input/output paths are resolved against the YAML file's directory,
so a pipeline file and its data can travel together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vectorpipe_api.pipeline import PipelineDocument


class PipelineFileError(ValueError):
    """The pipeline file cannot be read or does not describe a valid pipeline."""


def _is_relative(uri: str) -> bool:
    return not (uri.startswith(("s3://", "file://", "/")))


def resolve_relative_uris(raw: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Rewrite relative `input.uri`/`output.uri` to absolute paths under base_dir."""
    spec = raw.get("spec")
    if not isinstance(spec, dict):
        return raw
    for section in ("input", "output"):
        part = spec.get(section)
        if (
            isinstance(part, dict)
            and isinstance(part.get("uri"), str)
            and _is_relative(part["uri"])
        ):
            trailing = "/" if part["uri"].endswith("/") else ""
            part["uri"] = str((base_dir / part["uri"]).resolve()) + trailing
    return raw


def format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(document)"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  {loc}: {msg}")
    return "invalid VectorPipeline:\n" + "\n".join(lines)


def parse_document(raw: Any) -> PipelineDocument:
    if not isinstance(raw, dict):
        raise PipelineFileError("a VectorPipeline document must be a YAML mapping")
    try:
        return PipelineDocument.model_validate(raw)
    except ValidationError as e:
        raise PipelineFileError(format_validation_error(e)) from None


def load_pipeline(path: str | Path) -> PipelineDocument:
    """Read, resolve and validate one VectorPipeline YAML file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise PipelineFileError(f"cannot read {p}: {e.strerror}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise PipelineFileError(f"{p}: not valid YAML: {e}") from None
    pipelines = [d for d in docs if isinstance(d, dict) and d.get("kind") == "VectorPipeline"]
    if len(pipelines) != 1:
        raise PipelineFileError(f"{p}: expected exactly one VectorPipeline, found {len(pipelines)}")
    return parse_document(resolve_relative_uris(pipelines[0], p.parent.resolve()))
