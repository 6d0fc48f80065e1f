"""Kopf handler registration, and nothing else (the bridge's thin router).

`register` attaches each handler module's function to a Kopf registry with its
filters and retry policy; importing this module registers them on Kopf's
default registry with the default options, which is what
`kopf run -m slurm_bridge.main` expects (`python -m slurm_bridge` registers on
its own registry with the options from its flags). Create/resume runs the
first pass at once; the poll timer then runs a pass every `poll_interval`
seconds while the SlurmJob has not ended, each failure delaying the next by a
capped, doubling TemporaryError delay; deletion holds the finalizer until the
Slurm job is cancelled, retrying forever with a capped delay.
"""

from __future__ import annotations

import kopf

from slurm_bridge.handlers import delete, gone, poll, startup, submit
from slurm_bridge.options import Options
from vectorpipe_api.meta import GROUP, SLURMJOB_PLURAL, VERSION


def register(registry: kopf.OperatorRegistry, options: Options) -> None:
    slurmjobs = (GROUP, VERSION, SLURMJOB_PLURAL)
    # A registry of our own has no fallback login handlers: log in like Kopf's default does.
    kopf.on.login(registry=registry)(kopf.login_via_client)
    kopf.on.startup(registry=registry)(startup.on_startup)
    kopf.on.cleanup(registry=registry)(startup.on_cleanup)
    for decorator, hid in ((kopf.on.create, "submit"), (kopf.on.resume, "resume")):
        decorator(*slurmjobs, id=hid, registry=registry, backoff=options.poll_interval)(
            submit.on_create_or_resume
        )
    kopf.timer(
        *slurmjobs,
        id="poll",
        registry=registry,
        interval=options.poll_interval,
        backoff=options.max_backoff,
        when=poll.unfinished,
    )(poll.on_poll)
    kopf.on.delete(*slurmjobs, id="cancel", registry=registry, backoff=options.delete_backoff)(
        delete.on_delete
    )
    kopf.on.event(*slurmjobs, registry=registry, when=gone.deleted)(gone.on_deleted)


register(kopf.get_default_registry(), Options())
