"""Slurm clients for the bridge: slurmrestd (JWT, REST v0.0.38–v0.0.42) and the CLI.

Import what you need from here: `SlurmRestClient` and `SlurmCliClient` both
satisfy the `SlurmClient` Protocol, take a version-neutral `JobRequest` and
return `JobInfo`; `AsyncSlurmClient` wraps either for asyncio code; token
providers live in `auth`. Importing this package has no side effects.
"""

from __future__ import annotations

from slurm_bridge.client.aio import AsyncSlurmClient
from slurm_bridge.client.auth import TokenProvider, file_token, static_token
from slurm_bridge.client.cli import SlurmCliClient
from slurm_bridge.client.models import (
    TERMINAL_STATES,
    ControllerPing,
    JobInfo,
    JobRequest,
)
from slurm_bridge.client.protocol import SlurmClient
from slurm_bridge.client.rest import SlurmRestClient
from slurm_bridge.client.versions import SUPPORTED_VERSIONS, pick_version, versions_in_openapi

__all__ = [
    "SUPPORTED_VERSIONS",
    "TERMINAL_STATES",
    "AsyncSlurmClient",
    "ControllerPing",
    "JobInfo",
    "JobRequest",
    "SlurmCliClient",
    "SlurmClient",
    "SlurmRestClient",
    "TokenProvider",
    "file_token",
    "pick_version",
    "static_token",
    "versions_in_openapi",
]
