"""Operator configuration: Kopf settings and what starts with the operator.

`configure` sets Kopf's persistence (annotations under `vectorpipe.io/`, so
typed statuses carry no Kopf bookkeeping and nothing is written to
`kopf.zalando.org`), posting (only warnings and errors from handler logs
become Events; phase transitions are posted explicitly), watching (server and
client timeouts so a silent stream is reconnected) and networking (a bounded
list of back-offs for failed API calls, after which Kopf gives up on that
call). `start` is what the start-up handler runs: those settings, the
Kubernetes client configuration, and the metrics endpoint if a port is set.
"""

from __future__ import annotations

import logging

import kopf

from slurm_bridge import runtime
from vectorpipe_operator import k8s
from vectorpipe_operator.metrics import metrics
from vectorpipe_operator.resources import DIFFBASE_KEY, PERSISTENCE_PREFIX, TOUCH_KEY

METRICS_PORT_ENV = "VECTORPIPE_METRICS_PORT"
METRICS_ADDR_ENV = "VECTORPIPE_METRICS_ADDR"


def configure(settings: kopf.OperatorSettings) -> None:
    runtime.configure_settings(
        settings,
        prefix=PERSISTENCE_PREFIX,
        diffbase_key=DIFFBASE_KEY,
        touch_key=TOUCH_KEY,
        # No handler requires a finalizer (nothing outside Kubernetes is owned);
        # the name is set only so one would never be `kopf.zalando.org`'s.
        finalizer=f"{PERSISTENCE_PREFIX}/operator",
        posting_level=logging.WARNING,
        max_workers=8,
    )


def start(settings: kopf.OperatorSettings, memo: kopf.Memo) -> None:
    configure(settings)
    k8s.load_config()
    port, addr = runtime.metrics_endpoint(memo, METRICS_PORT_ENV, METRICS_ADDR_ENV)
    if port > 0:
        metrics().serve(port, addr)
