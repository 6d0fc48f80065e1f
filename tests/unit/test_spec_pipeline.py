"""The VectorPipeline spec as the local runner checks it (no API server).

tests/k8s/test_crd_admission.py sends the same invalid specs (`BAD` in
tests/support/admission.py) to the real API server, which enforces the
generated schema and CEL rules; here the pydantic validators must refuse each
with the same message, so `vectorpipe run` and `kubectl apply` agree on what a
valid pipeline is.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.support.admission import BAD
from vectorpipe_api.pipeline import VectorPipelineSpec

# Name limits come from KubeRay (it derives child names from the pipeline's),
# so they bind on Kubernetes only; a local run has no children to name.
KUBERNETES_ONLY = {"name-too-long", "name-plus-run-id-too-long", "name-starts-with-digit"}
# The API server words schema errors its own way (type, enum, pattern, unknown
# field); only the CEL messages are ours, and those must match word for word.
SERVER_WORDING = ("spec.", "unknown field", "Unsupported value")


@pytest.mark.parametrize(
    ("case", "body", "message"),
    [c for c in BAD if c[0] not in KUBERNETES_ONLY],
    ids=[c[0] for c in BAD if c[0] not in KUBERNETES_ONLY],
)
def test_local_validation_refuses_what_admission_refuses(
    case: str, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as err:
        VectorPipelineSpec.model_validate(body["spec"])
    if not any(w in message for w in SERVER_WORDING):
        assert message in str(err.value), case


def test_shared_filesystem_and_ca_bundle_defaults() -> None:
    spec = VectorPipelineSpec.model_validate(
        {
            "input": {"uri": "/fsx/reads/"},
            "output": {"uri": "/fsx/runs/r1/"},
            "ray": {"sharedFilesystem": {"claimName": "fsx"}},
            "hpc": {
                "slurm": {
                    "endpoint": "https://head:8082",
                    "tokenSecretRef": {"name": "slurm-jwt"},
                    "caBundleSecretRef": {"name": "slurmrestd-ca"},
                }
            },
        }
    )
    assert spec.ray.shared_filesystem is not None
    assert (spec.ray.shared_filesystem.mount_path, spec.ray.shared_filesystem.read_only) == (
        "/fsx",
        False,
    )
    assert spec.hpc.slurm.ca_bundle_secret_ref is not None
    assert spec.hpc.slurm.ca_bundle_secret_ref.key == "ca.crt"
