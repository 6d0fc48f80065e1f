"""REST API v0.0.42: introduced by Slurm 24.11, served by 25.05 and 25.11 too.

Follows ``src/plugins/data_parser/v0.0.42/parsers.c`` and the generated
``doc/html/rest_api.shtml`` (tag slurm-24-11-7-1). Submit body as in v0.0.41
(script inside ``job``); the submit response drops the deprecated ``result``.
Ping entries deprecate ``pinged``/``mode`` in favour of ``responding`` (bool) and
``primary``. ``DELETE /job/{id}`` now answers ``openapi_kill_job_resp`` whose
``status[]`` lists per-job failures (``error: {string, code, message}``) even in a
200 response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from slurm_bridge.client.adapter import ErrorEntry, Json, read_number
from slurm_bridge.client.v0041 import V0041


class V0042(V0041):
    version: ClassVar[str] = "v0.0.42"

    def ping_responding(self, ping: Mapping[str, Any]) -> bool:
        if isinstance(ping.get("responding"), bool):
            return bool(ping["responding"])
        return super().ping_responding(ping)

    def cancel_errors(self, body: Json) -> list[ErrorEntry]:
        failures = []
        for item in body.get("status") or []:
            error = item.get("error") if isinstance(item, Mapping) else None
            if not isinstance(error, Mapping):
                continue
            code = read_number(error.get("code"))
            if code:
                failures.append(
                    ErrorEntry(
                        number=code,
                        error=str(error.get("string") or ""),
                        description=str(error.get("message") or ""),
                        source="kill_jobs",
                    )
                )
        return failures
