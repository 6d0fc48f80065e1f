"""The slurm-bridge: a Kopf controller that runs `SlurmJob` resources on Slurm.

Layout: `spec` is the SlurmJob model (the CRD's source); `client/` talks to
Slurm (slurmrestd over REST, or the CLI) with the typed errors of `errors`.
The controller: `main` registers the handlers in `handlers/` (one module each),
which call `reconcile` (create, resume, poll) or `finalize` (delete); those use
the pure `script` (the batch job from a spec) and `status` (the status from
what Slurm said), `clients` (which Slurm client, token read from a Secret) and
`k8s`, the only module that talks to the Kubernetes API. `python -m
slurm_bridge` runs it. Importing the package does nothing.
"""
