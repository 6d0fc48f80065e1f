"""Labels, annotations and the parsed pipeline the operator's modules agree on.

The API coordinates, the typed status and the child names live in
`vectorpipe_api`; here is what only the operator uses: the labels and the
annotation prefix it stamps on what it owns, where the pipeline file is
mounted in the Ray pods, `Pipeline` (the parsed view of one custom resource
that the pure builders and the status computation take) and the two
owner-reference checks. Nothing here talks to the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from vectorpipe_api.meta import API_VERSION, PIPELINE_KIND
from vectorpipe_api.pipeline import VectorPipelineSpec
from vectorpipe_api.pipeline_names import (
    configmap_name,
    rayjob_name,
    run_identity,
    slurmjob_name,
)

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

    @property
    def run_id(self) -> str | None:
        return self.spec.run_id

    @property
    def configmap_name(self) -> str:
        return configmap_name(self.name, self.run_id)

    @property
    def rayjob_name(self) -> str:
        return rayjob_name(self.name, self.run_id)

    @property
    def slurmjob_name(self) -> str:
        return slurmjob_name(self.name, self.run_id)

    @property
    def run(self) -> str:
        """This run's identity as stage 1 records it in the manifest."""
        return run_identity(self.uid, self.run_id)

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
        if ref.get("kind") == PIPELINE_KIND and ref.get("apiVersion") == API_VERSION:
            return str(ref.get("name"))
    return None


def owned_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    """Whether `obj` carries an owner reference to the object with this UID."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == owner_uid for r in refs)
