"""REST API v0.0.38: Slurm 22.05 (Debian bookworm, ParallelCluster 3.3–3.5), also 23.02/23.11.

Follows ``src/plugins/openapi/v0.0.38/openapi.json`` and the request parser in
``src/plugins/openapi/v0.0.38/jobs.c`` (tag slurm-22-05-8-1), confirmed against a
live slurmrestd 22.05.8: the environment is a map and must not be empty; ``nodes``
is a ``[min, max]`` list; numbers are plain ints; ``job_state`` is one string;
``exit_code`` is the raw waitpid() status (768 means exit 3); ping entries say
``"ping": "UP"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from slurm_bridge.client.adapter import Json, RestAdapter


class V0038(RestAdapter):
    version: ClassVar[str] = "v0.0.38"
    exit_code_is_wait_status: ClassVar[bool] = True

    def encode_environment(self, env: Mapping[str, str]) -> Any:
        return dict(env)

    def encode_nodes(self, count: int) -> Any:
        return [count, count]

    def encode_requeue(self, requeue: bool) -> Json:
        # v0.0.38 reads job fields like sbatch options: `requeue` is a flag that
        # turns requeueing on whatever its value, `no_requeue` turns it off.
        return {"requeue": True} if requeue else {"no_requeue": True}

    def encode_number(self, value: int) -> Any:
        return value

    def ping_responding(self, ping: Mapping[str, Any]) -> bool:
        return str(ping.get("ping", "")).upper() == "UP"
