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

import kopf

from slurm_bridge.clients import Clients
from slurm_bridge.context import HOOKS_KEY, MEMO_KEY, Bridge, Hooks
from slurm_bridge.finalize import FINALIZER
from slurm_bridge.k8s import Kube, load_config
from slurm_bridge.metrics import metrics
from slurm_bridge.options import Options
from vectorpipe_kopf import shell

PERSISTENCE_PREFIX = "slurm-bridge.vectorpipe.io"
DIFFBASE_KEY = "last-handled-configuration"
TOUCH_KEY = "touch"
METRICS_PORT_ENV = "SLURM_BRIDGE_METRICS_PORT"
METRICS_ADDR_ENV = "SLURM_BRIDGE_METRICS_ADDR"


def configure(settings: kopf.OperatorSettings) -> None:
    shell.configure_settings(
        settings,
        prefix=PERSISTENCE_PREFIX,
        diffbase_key=DIFFBASE_KEY,
        touch_key=TOUCH_KEY,
        finalizer=FINALIZER,
        posting_level=logging.CRITICAL,
        max_workers=16,
    )


def start(settings: kopf.OperatorSettings, memo: kopf.Memo) -> None:
    configure(settings)
    shell.quiet_http_loggers()
    load_config()
    options = memo.get("options")
    if not isinstance(options, Options):
        options = Options.from_env()
    hooks = memo.get(HOOKS_KEY)
    kube = Kube()
    memo[MEMO_KEY] = Bridge(
        kube,
        Clients(kube, options),
        options,
        metrics(),
        hooks if isinstance(hooks, Hooks) else Hooks(),
    )
    port, addr = shell.metrics_endpoint(memo, METRICS_PORT_ENV, METRICS_ADDR_ENV)
    if port > 0:
        metrics().serve(port, addr)


def stop(memo: kopf.Memo) -> None:
    bridge = memo.get(MEMO_KEY)
    if isinstance(bridge, Bridge):
        bridge.clients.close()
