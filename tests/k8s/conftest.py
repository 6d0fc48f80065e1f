"""Conftest for the Kubernetes tier.

The fixtures (`k8s_toolchain`, `k8s`, `kuberay`, `namespace`) live in
tests/conftest.py so every folder shares one control plane. Some tests here
were written as `from controlplane import ...`; that name is aliased to the same
module object so no second copy (with its own ControlPlane class) is imported.
"""

from __future__ import annotations

import sys

from tests.k8s import controlplane as _controlplane

sys.modules.setdefault("controlplane", _controlplane)
