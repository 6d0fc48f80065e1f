"""Fixtures for the tests against a real Slurm: munged, slurmctld, slurmd, slurmrestd.

`slurm` (session, defined in tests/conftest.py) is a `LocalSlurm` on
loopback serving REST v0.0.36-v0.0.38 with JWT. `rest` is a `SlurmRestClient` for
root whose token comes from the mutable `token_box`, so a test can rotate it;
`cli` is the `SlurmCliClient` for the same cluster and `expired_token` a real
token past its expiry. When a test that used the cluster fails, the tail of
every daemon's log is attached to its report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator

import pytest

from slurm_bridge.client import SlurmCliClient, SlurmRestClient
from tests.services.slurm import LocalSlurm
from tests.support.slurm import TokenBox


def pytest_configure(config: pytest.Config) -> None:
    # Also registered in pyproject.toml; repeated so this folder runs on its own.
    config.addinivalue_line("markers", "slurm: needs the local Slurm + slurmrestd services")


@pytest.fixture
def token_box(slurm: LocalSlurm) -> TokenBox:
    return TokenBox(slurm.token("root", lifespan=3600))


@pytest.fixture(scope="session")
def expired_token(slurm: LocalSlurm) -> Callable[[], str]:
    """A real root token that has expired by the time it is asked for.

    Minted once at session start; the first caller waits out what is left of
    its one-second life plus the client's clock-skew leeway.
    """
    token, minted = slurm.token("root", lifespan=1), time.monotonic()

    def get() -> str:
        time.sleep(max(0.0, minted + 7 - time.monotonic()))
        return token

    return get


@pytest.fixture
def rest(slurm: LocalSlurm, token_box: TokenBox) -> Iterator[SlurmRestClient]:
    # Short backoff: fault tests wait through the retries.
    with SlurmRestClient(
        slurm.rest_url, "root", token_box, timeout=30, retries=3, backoff=0.2, max_backoff=1.0
    ) as client:
        yield client


@pytest.fixture
def cli(slurm: LocalSlurm) -> SlurmCliClient:
    return SlurmCliClient(slurm_conf=str(slurm.conf_path), retries=2, backoff=0.2)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    cluster = getattr(item, "funcargs", {}).get("slurm")
    if report.failed and isinstance(cluster, LocalSlurm):
        report.sections.append(("slurm daemon logs", cluster.log_tails()))
