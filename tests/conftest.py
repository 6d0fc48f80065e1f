"""Fixtures shared by every tier: the loopback S3 API and one local Ray per session.

Services that need installing (Slurm, the Kubernetes control plane) have their
own conftest in their folder; these two are pure Python and start in seconds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services.s3 import LocalS3, local_s3


@pytest.fixture(scope="session")
def s3() -> Iterator[LocalS3]:
    """The loopback S3 API; its endpoint and dummy credentials go into the environment
    for the whole session so Ray workers and mpirun ranks started later inherit them."""
    with local_s3() as server:
        saved = {k: os.environ.get(k) for k in server.env()}
        os.environ.update(server.env())
        yield server
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def ray_session(s3: LocalS3) -> Iterator[Any]:
    """A local Ray for the whole session; Ray workers inherit S3 settings per task args."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    from vectorpipe_workloads.runner import start_ray

    start_ray(num_cpus=2)
    yield ray
    ray.shutdown()
