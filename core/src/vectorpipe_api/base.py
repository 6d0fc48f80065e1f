"""What every VectorPipe custom resource model is built from.

`SpecModel` (camelCase on the wire, unknown fields refused, frozen) is the
base of every spec model and `StatusModel` (camelCase, unknown fields ignored
on read) of every status model; `Condition` is the standard Kubernetes
condition both controllers write. `cel`/`cel_many` attach CEL rules
(`x-kubernetes-validations`) that `hack/gen_crds.py` copies into the CRDs,
and the patterns are the value formats both CRDs share. Only pydantic is
imported, so anything may depend on this package without pulling in a
numeric or Kubernetes stack.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

URI_PATTERN = r"^(s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?|file:///.+|/.+)$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$"
TIME_LIMIT_PATTERN = r"^([0-9]+-)?[0-9]{1,2}:[0-9]{2}:[0-9]{2}$|^[0-9]+$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def cel(rule: str, message: str) -> dict[str, Any]:
    """One `x-kubernetes-validations` entry for a generated CRD."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message}]}


def cel_many(*rules: tuple[str, str]) -> dict[str, Any]:
    """Several `x-kubernetes-validations` entries, as (rule, message) pairs."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


class SpecModel(BaseModel):
    """Base for every spec model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class StatusModel(BaseModel):
    """Base for status models: camelCase on the wire, unknown fields ignored on read."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    """A standard Kubernetes condition (metav1.Condition without observedGeneration)."""

    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(
        default="", max_length=1024, description="CamelCase reason for the last transition."
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: str | None = Field(
        default=None,
        description="When status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
