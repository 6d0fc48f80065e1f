"""Helpers the test suites share; no test module imports another test module.

`controlplane` is the real, throw-away Kubernetes control plane (etcd,
kube-apiserver, controller-manager, scheduler, optionally kwok and KubeRay);
`processes` a controller (operator or slurm-bridge) running as a subprocess;
`operator` and `bridge` the rigs that start those controllers in a namespace
and drive their custom resources with kubectl; `rayjob_harness` runs a RayJob's
entrypoint the way its head pod would; `admission` holds the invalid specs both
the API server and the local validator must refuse; `slurm` the helpers of the
tests against a real Slurm. Nothing here defines pytest fixtures: those live in
the conftest files, so every folder shares one instance.
"""
