"""The SlurmJob spec model's own validation (the CEL twins run in tests/k8s/test_crds.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from vectorpipe_api.slurmjob import SlurmJobSpec, SlurmJobStatus


def spec(**kw: Any) -> SlurmJobSpec:
    return SlurmJobSpec.model_validate(kw)


def test_command_with_defaults() -> None:
    s = spec(command=["python", "-m", "app"], nodes=2, ntasksPerNode=4)
    assert s.ranks == 8
    assert s.effective_launcher == "mpirun"
    assert s.time_limit == "01:00:00"
    assert s.slurm.endpoint is None and s.slurm.user == "vectorpipe"
    assert s.backoff_limit == 0


def test_script_with_rest_endpoint() -> None:
    s = spec(
        script="#!/bin/bash\nsrun hostname\n",
        partition="compute",
        environment={"OMP_NUM_THREADS": "1"},
        slurm={
            "endpoint": "https://head:8082",
            "tokenSecretRef": {"name": "slurm-jwt"},
            "apiVersion": "v0.0.38",
            "caBundleSecretRef": {"name": "slurm-ca"},
        },
    )
    assert s.slurm.token_secret_ref is not None and s.slurm.token_secret_ref.key == "token"
    assert s.slurm.ca_bundle_secret_ref is not None
    assert s.slurm.ca_bundle_secret_ref.key == "ca.crt"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({}, "exactly one of script or command must be set"),
        ({"script": "#!/bin/sh\n", "command": ["x"]}, "exactly one of script or command"),
        ({"script": "#!/bin/sh\n", "launcher": "srun"}, "launcher and launcherArgs are only valid"),
        ({"command": ["x"], "launcher": "pbs"}, "Input should be 'mpirun', 'srun' or 'none'"),
        ({"command": []}, "at least 1 item"),
        ({"command": ["x"], "nodes": 0}, "greater than or equal to 1"),
        ({"command": ["x"], "timeLimit": "1 hour"}, "String should match pattern"),
        ({"command": ["x"], "environment": {"1BAD": "x"}}, "environment variable name"),
        ({"command": ["x"], "workingDirectory": "relative"}, "String should match pattern"),
        ({"command": ["x"], "slurm": {"endpoint": "https://h:1"}}, "tokenSecretRef is required"),
        ({"command": ["x"], "slurm": {"insecureSkipVerify": True}}, "need an endpoint"),
        ({"command": ["x"], "slurm": {"apiVersion": "v1"}}, "String should match pattern"),
        ({"command": ["x"], "bogus": 1}, "Extra inputs are not permitted"),
    ],
)
def test_invalid(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**kw)


def test_status_model_reads_what_the_bridge_writes() -> None:
    st = SlurmJobStatus.model_validate(
        {
            "phase": "Running",
            "jobId": 12,
            "state": "RUNNING",
            "nodes": "node[1-2]",
            "startTime": "2025-01-01T00:00:00Z",
            "conditions": [{"type": "Submitted", "status": "True", "reason": "Submitted"}],
            "somethingNew": 1,
        }
    )
    assert st.phase == "Running" and st.job_id == 12
    assert st.conditions[0].type == "Submitted"
