"""A real, throw-away Kubernetes control plane for VectorPipe's tests.

`ControlPlane` (cluster.py) starts etcd, kube-apiserver, kube-controller-manager
and kube-scheduler and drives them; it is split by what each part holds:
pki.py the certificates, keys and kubeconfigs, processes.py the component
processes (command lines, health checks, start/stop, logs), tools.py the
pinned binaries (`Toolchain`) and the kubectl/helm wrappers, kuberay.py the
optional kwok node and KubeRay operator. `ControlPlaneError` is what every
failure raises and `free_ports` picks loopback ports. Nothing here imports
pytest, so scripts (bench/k8s.py) use it too.
"""

from tests.support.controlplane.cluster import ControlPlane
from tests.support.controlplane.processes import free_ports
from tests.support.controlplane.tools import ControlPlaneError, Toolchain

__all__ = ["ControlPlane", "ControlPlaneError", "Toolchain", "free_ports"]
