"""REST API v0.0.42: introduced by Slurm 24.11, served by 25.05 and 25.11 too.

Follows ``src/plugins/data_parser/v0.0.42/parsers.c`` and the generated
``doc/html/rest_api.shtml`` (tag slurm-24-11-7-1). Submit body as in v0.0.41
(script inside ``job``); the submit response drops the deprecated ``result``.
Ping entries deprecate ``pinged``/``mode`` in favour of ``responding`` (bool) and
``primary``. ``DELETE /job/{id}`` now answers ``openapi_kill_job_resp`` whose
``status[]`` lists per-job failures (``error: {string, code, message}``) even in a
200 response; the base adapter reads that for every version (see there why).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from slurm_bridge.client.v0041 import V0041


class V0042(V0041):
    version: ClassVar[str] = "v0.0.42"

    def ping_responding(self, ping: Mapping[str, Any]) -> bool:
        if isinstance(ping.get("responding"), bool):
            return bool(ping["responding"])
        return super().ping_responding(ping)
