"""A real, throw-away Kubernetes control plane for VectorPipe's tests.

`ControlPlane` (cluster.py) starts etcd, kube-apiserver, kube-controller-manager
and kube-scheduler from the binaries `Toolchain` finds (built by
hack/k8s/build.sh); `ControlPlaneError` is what every failure raises and
`free_ports` picks loopback ports. Nothing here imports pytest, so scripts
(bench/k8s.py) use it too.
"""

from tests.support.controlplane.cluster import (
    ControlPlane,
    ControlPlaneError,
    Toolchain,
    free_ports,
)

__all__ = ["ControlPlane", "ControlPlaneError", "Toolchain", "free_ports"]
