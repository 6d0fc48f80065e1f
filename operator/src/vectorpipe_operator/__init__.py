"""The VectorPipeline operator: a Kopf operator driving KubeRay (stage 1) and Slurm (stage 2).

Layout: `main` registers the handlers in `handlers/` (one module each);
they all call `reconcile`, whose ordered steps use the pure `builders`
(children as dicts) and `status` (status as a function of what was
observed), `manifests` (stage 1's commit point) and `k8s`, the only module
that talks to the Kubernetes API. `resources` holds the names and the typed
status shared with `hack/gen_crds.py`. Importing the package does nothing.
"""
