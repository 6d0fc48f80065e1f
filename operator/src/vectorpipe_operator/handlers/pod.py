"""Pod watch: a Ray pod of a pipeline changed (KubeRay copies our template labels onto it).

Only pods labelled as managed by the operator are streamed (a server-side
selector, see `config.configure`); the pipeline is the pod's
`vectorpipe.io/pipeline` label. A pass this triggers reports its outcome in
the pipeline's status and Events, and the pipeline's own handlers retry, so
a Kopf error is only logged here: an event handler is never retried, and
Kopf would post it as an Event on the pod.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from vectorpipe_operator.config import context
from vectorpipe_operator.reconcile import reconcile
from vectorpipe_operator.resources import LABEL_PIPELINE

log = logging.getLogger(__name__)


def on_pod_event(
    *, type: str | None, labels: kopf.Labels, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """Reconcile the pipeline whose Ray pod was added or changed (not deleted)."""
    owner = labels.get(LABEL_PIPELINE)
    if owner is None or type == "DELETED":
        return
    try:
        reconcile(context(memo, "pod", 0), str(namespace), owner)
    except (kopf.TemporaryError, kopf.PermanentError) as e:
        log.info("pipeline %s/%s after a pod event: %s", namespace, owner, e)
