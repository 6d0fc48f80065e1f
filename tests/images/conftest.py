"""Container image tests: build with buildah from the cached debootstrap base, run inside."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too so this folder runs cleanly under --strict-markers
    # even before the root configuration lists the marker.
    config.addinivalue_line(
        "markers", "images: builds container images with buildah (hack/images/build.sh)"
    )
