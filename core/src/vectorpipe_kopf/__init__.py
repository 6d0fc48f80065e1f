"""The Kopf runtime both VectorPipe controllers share, and nothing resource-specific.

`shell` is the command line and Kopf settings, `kube` the Kubernetes client
base (configuration, failure classification, timed calls), `errors` the
Kopf-free transient/permanent errors and their backoff, `locks` the
per-object locks and `gauge` the objects-by-phase gauge. The operator and the
slurm-bridge import this package and never each other (import-linter checks
it); it imports Kopf, the Kubernetes client and prometheus_client, and nothing
of VectorPipe's own.
"""
