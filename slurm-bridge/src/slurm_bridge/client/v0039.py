"""REST API v0.0.39: introduced by Slurm 23.02, served up to 24.05.

Follows ``src/plugins/openapi/v0.0.39/openapi.json`` and the data_parser tables
in ``src/plugins/data_parser/v0.0.39/parsers.c`` (tag slurm-23-02-7-1): the first
version built on data_parser. The environment becomes a ``K=V`` list, ``nodes`` a
string, and no-value numbers (``time_limit``, ``exit_code``) ``{set, infinite,
number}`` objects, while times stay plain ints and ``job_state`` stays one string.
``exit_code`` is still the raw waitpid() status, only wrapped in a number object.
Ping entries say ``"pinged": "UP"``. Everything here is the base behaviour.
"""

from __future__ import annotations

from typing import ClassVar

from slurm_bridge.client.adapter import RestAdapter


class V0039(RestAdapter):
    version: ClassVar[str] = "v0.0.39"
    exit_code_is_wait_status: ClassVar[bool] = True
