"""One module per Kopf handler; `slurm_bridge.main` registers them.

Every handler is thin: it takes what Kopf passes, calls one function, and
returns. Create/resume and the poll timer both call `reconcile.reconcile`, so
a SlurmJob is driven by the same pass whatever woke it up; deletion calls
`finalize.finalize`.
"""
