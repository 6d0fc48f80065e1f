"""Names of a VectorPipeline's children, and the CRD rules that keep them valid.

A pipeline's children are named from the pipeline and its run
(`spec.runId`), so a pass interrupted anywhere finds what it created before
and a new run never meets the previous run's objects. KubeRay names the
RayCluster `<rayjob>-<5 chars>` and refuses cluster names over 53 characters,
so a RayJob name may have 47; ours is `<pipeline>[-<runId>]-etl`, and RayJob
names are DNS-1035 labels (they start with a letter). Those limits are
admission rules of the VectorPipeline CRD (`RESOURCE_RULES`), next to the
rule that freezes the spec within a run.
"""

from __future__ import annotations

RAYJOB_SUFFIX = "-etl"
MAX_RAYJOB_NAME = 47
MAX_RUN_ID = 16
# The longest pipeline name plus "-<runId>" that still leaves room for the suffix.
MAX_RUN_BASE = MAX_RAYJOB_NAME - len(RAYJOB_SUFFIX)

RESOURCE_RULES: list[dict[str, str]] = [
    {
        "rule": "self.metadata.name.size() + (has(self.spec.runId) ? self.spec.runId.size() + 1 : 0)"
        f" <= {MAX_RUN_BASE}",
        "message": f"metadata.name plus '-' and spec.runId must be at most {MAX_RUN_BASE} "
        "characters (the RayJob and RayCluster names derive from them)",
    },
    {
        "rule": "self.metadata.name.matches('^[a-z]')",
        "message": "metadata.name must start with a letter (RayJob names are DNS-1035 labels)",
    },
]

# A run's spec cannot change under it; a new spec.runId starts a new run, with
# whatever spec it comes with (the GitOps way to re-run: edit, bump runId, push).
SPEC_IMMUTABLE_RULE = {
    "rule": "(has(self.runId) ? self.runId : '') != (has(oldSelf.runId) ? oldSelf.runId : '')"
    " || self == oldSelf",
    "message": "spec is immutable during a run; change spec.runId as well to start a new run "
    "with the new spec (or create the pipeline under a new name)",
}


def run_base(pipeline: str, run_id: str | None) -> str:
    """The prefix of every child of one run: the pipeline name, and `-<runId>` if set."""
    return f"{pipeline}-{run_id}" if run_id else pipeline


def run_identity(uid: str, run_id: str | None) -> str:
    """One run of one pipeline object, as stage 1 records it in its manifest.

    The UID tells a re-created pipeline of the same name apart, the run id a
    new run of the same object; the operator trusts only a manifest its own
    run wrote.
    """
    return f"{uid}/{run_id}" if run_id else uid


def configmap_name(pipeline: str, run_id: str | None = None) -> str:
    return f"{run_base(pipeline, run_id)}-pipeline"


def rayjob_name(pipeline: str, run_id: str | None = None) -> str:
    return f"{run_base(pipeline, run_id)}{RAYJOB_SUFFIX}"


def slurmjob_name(pipeline: str, run_id: str | None = None) -> str:
    return f"{run_base(pipeline, run_id)}-kmeans"
