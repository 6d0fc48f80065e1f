"""Bridge start-up and shutdown: Kopf settings, Kubernetes client, the `Bridge` context.

`configure` sets Kopf's persistence (annotations under
``slurm-bridge.vectorpipe.io/``, apart from the operator's, so both may watch
SlurmJobs; the finalizer is ``vectorpipe.io/slurm-bridge``), posting (only
critical log lines become Events, so a retried poll never floods them; the
bridge posts its transitions explicitly), watching (server and client
timeouts so a silent stream is reconnected) and networking (bounded backoffs
for failed API calls). `start` is what the start-up handler runs: those
settings, the Kubernetes client configuration, the `Bridge` put into Kopf's
memo (options from ``python -m slurm_bridge``'s flags, or from the
environment under ``kopf run``), and the metrics endpoint if a port is set.
HTTP client loggers stay at WARNING whatever the verbosity: their debug output
would print the slurmrestd token.
"""

from __future__ import annotations

import logging
import os

import kopf

from slurm_bridge import k8s
from slurm_bridge.clients import Clients
from slurm_bridge.context import MEMO_KEY, Bridge
from slurm_bridge.finalize import FINALIZER
from slurm_bridge.metrics import metrics
from slurm_bridge.options import Options

PERSISTENCE_PREFIX = "slurm-bridge.vectorpipe.io"
DIFFBASE_KEY = "last-handled-configuration"
TOUCH_KEY = "touch"
METRICS_PORT_ENV = "SLURM_BRIDGE_METRICS_PORT"
METRICS_ADDR_ENV = "SLURM_BRIDGE_METRICS_ADDR"


def configure(settings: kopf.OperatorSettings) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=PERSISTENCE_PREFIX, touch_key=TOUCH_KEY
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PERSISTENCE_PREFIX, key=DIFFBASE_KEY
    )
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.CRITICAL
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.error_backoffs = [1, 2, 4, 8, 16, 30]
    settings.execution.max_workers = 16


def quiet_clients() -> None:
    """Keep HTTP clients' debug logs out even under ``--verbose``/``--debug``.

    The kubernetes client logs every response body at DEBUG, which for a Secret
    read is the slurmrestd token; httpx logs request headers (X-SLURM-USER-TOKEN).
    """
    for name in ("kubernetes", "urllib3", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def start(settings: kopf.OperatorSettings, memo: kopf.Memo) -> None:
    configure(settings)
    quiet_clients()
    k8s.load_config()
    options = memo.get("options")
    if not isinstance(options, Options):
        options = Options.from_env()
    memo[MEMO_KEY] = Bridge(k8s.kube(), Clients(k8s.kube(), options), options, metrics())
    port = int(memo.get("metrics_port") or os.environ.get(METRICS_PORT_ENV) or 0)
    if port > 0:
        addr = str(memo.get("metrics_addr") or os.environ.get(METRICS_ADDR_ENV) or "0.0.0.0")
        metrics().serve(port, addr)


def stop(memo: kopf.Memo) -> None:
    bridge = memo.get(MEMO_KEY)
    if isinstance(bridge, Bridge):
        bridge.clients.close()
