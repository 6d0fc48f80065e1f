"""One module per Kopf handler; `vectorpipe_operator.main` registers them.

Every handler is thin: it takes what Kopf passes, calls one function, and
returns. None calls another handler; those that reconcile all call
`reconcile.reconcile`, so a pipeline is driven by the same ordered steps
whatever woke it up.
"""
