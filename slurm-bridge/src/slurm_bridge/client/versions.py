"""Which REST versions this client speaks, and which one a slurmrestd offers.

slurmrestd publishes its OpenAPI document at ``/openapi/v3`` (also ``/openapi``
and ``/openapi.json``); its ``paths`` spell out every served version, e.g.
``/slurm/v0.0.38/job/submit``. Older plugin documents instead give relative
paths plus a ``servers`` entry ``/slurm/v0.0.38/``; both forms are read. The
client speaks the newest version both sides know, so a cluster upgrade moves it
forward on its own, and a caller can pin one instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from slurm_bridge.client.adapter import RestAdapter
from slurm_bridge.client.v0038 import V0038
from slurm_bridge.client.v0039 import V0039
from slurm_bridge.client.v0040 import V0040
from slurm_bridge.client.v0041 import V0041
from slurm_bridge.client.v0042 import V0042
from slurm_bridge.errors import SlurmRejected

ADAPTERS: dict[str, type[RestAdapter]] = {a.version: a for a in (V0038, V0039, V0040, V0041, V0042)}

_VERSION_IN_PATH = re.compile(r"/slurm/(v\d+\.\d+\.\d+)(?:/|$)")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.lstrip("v").split("."))


SUPPORTED_VERSIONS: tuple[str, ...] = tuple(sorted(ADAPTERS, key=version_key))


def versions_in_openapi(document: Mapping[str, Any]) -> list[str]:
    """Every ``/slurm/vX.Y.Z/`` version (not ``slurmdb``) an OpenAPI document serves."""
    found: set[str] = set()
    sources: list[str] = [str(p) for p in document.get("paths") or {}]
    sources += [
        str(s.get("url", "")) for s in document.get("servers") or [] if isinstance(s, Mapping)
    ]
    for text in sources:
        match = _VERSION_IN_PATH.search(text)
        if match:
            found.add(match.group(1))
    return sorted(found, key=version_key)


def pick_version(offered: Iterable[str], supported: Iterable[str] = SUPPORTED_VERSIONS) -> str:
    """The newest version both the server and this client speak."""
    offered = list(offered)
    common = set(offered) & set(supported)
    if not common:
        raise SlurmRejected(
            f"slurmrestd offers {', '.join(offered) or 'no /slurm/ API'}; "
            f"this client speaks {', '.join(supported)}"
        )
    return max(common, key=version_key)


def adapter_for(version: str) -> RestAdapter:
    try:
        return ADAPTERS[version]()
    except KeyError:
        raise SlurmRejected(
            f"REST version {version} is not supported (supported: {', '.join(SUPPORTED_VERSIONS)})"
        ) from None
