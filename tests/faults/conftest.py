"""Fixtures of the fault and security suite.

The control plane (`k8s`), Slurm (`slurm`), S3 (`s3`) and Ray (`ray_session`)
are the session-wide ones from tests/conftest.py; fault tests stop and restart
their parts (the API server, slurmrestd, a Slurm node) and always bring them
back before they end, so the tests that run after them see a healthy cluster.
"""

from __future__ import annotations
