"""REST API v0.0.41: introduced by Slurm 24.05, served up to 25.11.

Follows ``src/plugins/data_parser/v0.0.41/parsers.c`` and the generated
``doc/html/rest_api.shtml`` (tag slurm-24-05-8-1). Responses read like v0.0.40;
the submit request changes: the top-level ``script`` of ``job_submit_req`` is
deprecated ("Populate script field in jobs[0] or job"), so the script goes inside
``job``.
"""

from __future__ import annotations

from typing import ClassVar

from slurm_bridge.client.adapter import Json, RestAdapter


class V0041(RestAdapter):
    version: ClassVar[str] = "v0.0.41"
    exit_code_is_wait_status: ClassVar[bool] = False

    def wrap_submit(self, script: str, job: Json) -> Json:
        return {"job": {**job, "script": script}}
