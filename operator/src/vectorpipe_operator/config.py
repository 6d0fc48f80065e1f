"""Operator configuration: Kopf settings and what starts with the operator.

`configure` sets Kopf's persistence (annotations under `vectorpipe.io/`, so
typed statuses carry no Kopf bookkeeping and nothing is written to
`kopf.zalando.org`), posting (only warnings and errors from handler logs
become Events; phase transitions are posted explicitly), watching (server and
client timeouts so a silent stream is reconnected) and networking (a bounded
list of back-offs for failed API calls, after which Kopf gives up on that
call), and a server-side label selector on the pod watch (only pods labelled
as managed by the operator, i.e. stage 1's Ray pods, are streamed, not every
pod of the cluster). `start` is what the start-up handler runs: those
settings, the Kubernetes client and the pending-rechecks timers (put in
Kopf's memo), the stuck-pod grace from `VECTORPIPE_POD_START_TIMEOUT`
(seconds, default 300; the chart's `operator.podStartTimeoutSeconds`), and
the metrics endpoint if a port is set; `context` is how every other handler
gets its reconcile context from the memo.
"""

from __future__ import annotations

import logging
import os

import kopf

from vectorpipe_kopf import shell
from vectorpipe_operator.k8s import Kube, KubeApi, load_config
from vectorpipe_operator.metrics import metrics
from vectorpipe_operator.pods import POD_START_TIMEOUT
from vectorpipe_operator.rechecks import Rechecks
from vectorpipe_operator.reconcile import Context, Hooks, reconcile
from vectorpipe_operator.resources import (
    DIFFBASE_KEY,
    LABEL_MANAGED_BY,
    MANAGER,
    PERSISTENCE_PREFIX,
    TOUCH_KEY,
)

KUBE_KEY = "kube"
HOOKS_KEY = "hooks"
RECHECKS_KEY = "rechecks"
POD_TIMEOUT_KEY = "pod_start_timeout"
METRICS_PORT_ENV = "VECTORPIPE_METRICS_PORT"
METRICS_ADDR_ENV = "VECTORPIPE_METRICS_ADDR"
POD_TIMEOUT_ENV = "VECTORPIPE_POD_START_TIMEOUT"
PODS = ("v1", "pods")


def configure(settings: kopf.OperatorSettings) -> None:
    shell.configure_settings(
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
    settings.watching.label_selectors[PODS] = f"{LABEL_MANAGED_BY}={MANAGER}"


def pod_start_timeout(value: str | None) -> float:
    """The stuck-pod grace in seconds from the environment's text (default 300)."""
    if value is None or not value.strip():
        return POD_START_TIMEOUT
    seconds = float(value)
    if seconds < 0:
        raise ValueError(f"{POD_TIMEOUT_ENV} must be >= 0 seconds, not {value!r}")
    return seconds


def start(settings: kopf.OperatorSettings, memo: kopf.Memo) -> None:
    configure(settings)
    shell.quiet_http_loggers()
    load_config()
    memo[KUBE_KEY] = Kube()
    memo[RECHECKS_KEY] = Rechecks()
    memo[POD_TIMEOUT_KEY] = pod_start_timeout(os.environ.get(POD_TIMEOUT_ENV))
    if not isinstance(memo.get(HOOKS_KEY), Hooks):
        memo[HOOKS_KEY] = Hooks()  # `kopf run` fills no memo
    port, addr = shell.metrics_endpoint(memo, METRICS_PORT_ENV, METRICS_ADDR_ENV)
    if port > 0:
        metrics().serve(port, addr)


def context(memo: kopf.Memo, trigger: str, attempt: int) -> Context:
    """The reconcile context of one handler call, from what `start` put in the memo."""
    kube = memo.get(KUBE_KEY)
    hooks = memo.get(HOOKS_KEY)
    if kube is None or not isinstance(hooks, Hooks):
        raise RuntimeError("the operator's start-up handler has not run")
    api: KubeApi = kube
    rechecks = memo.get(RECHECKS_KEY)

    def recheck(namespace: str, name: str, delay: float) -> None:
        if isinstance(rechecks, Rechecks):
            rechecks.schedule(
                (namespace, name),
                delay,
                lambda: reconcile(context(memo, "recheck", 0), namespace, name),
            )

    return Context(
        api,
        trigger=trigger,
        attempt=attempt,
        hooks=hooks,
        pod_start_timeout=float(memo.get(POD_TIMEOUT_KEY, POD_START_TIMEOUT)),
        recheck=recheck,
    )
