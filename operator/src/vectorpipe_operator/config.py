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
import os

import kopf

from vectorpipe_operator import k8s
from vectorpipe_operator.metrics import metrics
from vectorpipe_operator.resources import DIFFBASE_KEY, PERSISTENCE_PREFIX, TOUCH_KEY

METRICS_PORT_ENV = "VECTORPIPE_METRICS_PORT"
METRICS_ADDR_ENV = "VECTORPIPE_METRICS_ADDR"


def configure(settings: kopf.OperatorSettings) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=PERSISTENCE_PREFIX, touch_key=TOUCH_KEY
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PERSISTENCE_PREFIX, key=DIFFBASE_KEY
    )
    # No handler requires a finalizer (nothing outside Kubernetes is owned);
    # the name is set only so one would never be `kopf.zalando.org`'s.
    settings.persistence.finalizer = f"{PERSISTENCE_PREFIX}/operator"
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.error_backoffs = [1, 2, 4, 8, 16, 30]
    settings.execution.max_workers = 8


def start(settings: kopf.OperatorSettings, memo: kopf.Memo) -> None:
    configure(settings)
    k8s.load_config()
    # `python -m vectorpipe_operator` passes the port in the memo; `kopf run` uses the env.
    port = int(memo.get("metrics_port") or os.environ.get(METRICS_PORT_ENV) or 0)
    if port > 0:
        addr = str(memo.get("metrics_addr") or os.environ.get(METRICS_ADDR_ENV) or "0.0.0.0")
        metrics().serve(port, addr)
