"""REST API v0.0.40: introduced by Slurm 23.11, served up to 25.05.

Follows ``src/plugins/data_parser/v0.0.40/parsers.c`` and the generated
``doc/html/rest_api.shtml`` (tag slurm-23-11-10-1). Changes from v0.0.39 that
matter here: ``job_state`` is a list (base state plus flags such as COMPLETING),
times are ``{set, infinite, number}`` objects, and ``exit_code`` is a verbose
object ``{status: [...], return_code: {...}, signal: {id: {...}, name}}`` holding
the script's return code rather than a wait status. The submit response adds a
deprecated ``result`` object next to ``job_id``. The submit body keeps the script
at the top level.
"""

from __future__ import annotations

from typing import ClassVar

from slurm_bridge.client.adapter import RestAdapter


class V0040(RestAdapter):
    version: ClassVar[str] = "v0.0.40"
    exit_code_is_wait_status: ClassVar[bool] = False
