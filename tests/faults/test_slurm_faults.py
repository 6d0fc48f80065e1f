"""Faults 3, 5 and 9 on the slurm-bridge, the real kube-apiserver and a real Slurm.

The bridge runs as `python -m slurm_bridge` (poll interval 1 s, backoff cap
4 s) against the session's Slurm (munged, slurmctld, slurmd, slurmrestd with
JWT). Faults are real: slurmrestd is stopped before a SlurmJob can be
submitted and started again later; the only Slurm node is set DOWN under two
running jobs; a job outlives its time limit; the kube-apiserver is restarted
while the bridge follows a running job. Every test asserts both sides: the
SlurmJob's status, conditions and Events, and Slurm's own record of how many
jobs exist for that SlurmJob (its UID is in each job's comment).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slurm_bridge.client import SlurmRestClient
from slurm_bridge.script import job_key
from tests.services.slurm import LocalSlurm
from tests.support.bridge import Rig, cond, slurm_jobs_of, wait_slurm
from tests.support.controlplane import ControlPlane

pytestmark = [pytest.mark.faults, pytest.mark.k8s, pytest.mark.slurm]

MAX_BACKOFF = 4.0  # what Rig.start_bridge passes as --max-backoff
POLL = 1.0  # and --poll-interval


@pytest.fixture
def rig(crds: ControlPlane, slurm: LocalSlurm, namespace: str, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(crds, slurm, namespace, tmp_path)
    r.secret("slurm-jwt", r.token)
    yield r
    for b in r.bridges:
        b.stop()
    for i, b in enumerate(r.bridges):
        print(f"----- bridge {i} log (tail) -----\n{b.tail(150)}")
    print(slurm.log_tails(20))


def test_slurmrestd_down_before_submit_retries_with_a_bounded_backoff_then_submits_once(
    rig: Rig, rest: SlurmRestClient
) -> None:
    bridge = rig.start_bridge()
    rig.slurm.stop_slurmrestd()
    try:
        sj = rig.create("outage", script="#!/bin/bash\necho through\n")
        st = rig.wait(
            "outage", lambda s: cond(s, "SlurmReachable").get("status") == "False", "the outage"
        )
        assert st["phase"] == "Pending"
        assert cond(st, "SlurmReachable")["reason"] == "SlurmUnavailable"
        assert cond(st, "Submitted")["status"] == "False"
        started = time.monotonic()
        # Long enough for the doubling delays (1, 2, 4 s) to reach the cap several times.
        bridge_log = bridge.log.read_text()
        while len(_delays(bridge_log)) < 6:
            assert time.monotonic() - started < 120, bridge.tail()
            time.sleep(1)
            bridge_log = bridge.log.read_text()
        outage = time.monotonic() - started
    finally:
        rig.slurm.start_slurmrestd()
    delays = _delays(bridge_log)
    print(f"slurmrestd down {outage:.0f}s: {len(delays)} failed attempts, delays {delays}")
    # Bounded: doubling from the poll interval, never above the cap, and reaching it.
    assert all(d <= MAX_BACKOFF for d in delays), delays
    assert delays == sorted(delays) and delays[-1] == MAX_BACKOFF, delays
    # Never a hot loop: no more attempts than one per poll interval (plus the first two).
    assert len(delays) <= outage / POLL + 2, (len(delays), outage)
    st = rig.wait_phase("outage", "Succeeded")
    assert cond(st, "SlurmReachable")["status"] == "True"
    assert st["submitAttempts"] == 1
    (job,) = slurm_jobs_of(rest, sj["metadata"]["uid"])
    assert job.job_id == st["jobId"] and job.state == "COMPLETED"
    reasons = [r for r, _ in rig.events("outage")]
    assert "SlurmUnreachable" in reasons and "SlurmReachable" in reasons


def _delays(log: str) -> list[float]:
    """The retry delays the poll timer announced ("...; retrying in 4s")."""
    return [
        float(m)
        for m in re.findall(r"Timer 'poll' failed temporarily: .*retrying in ([\d.]+)s", log)
    ]


def _node_back(slurm: LocalSlurm) -> None:
    """Bring the node back to service (ReturnToService=2 usually does it by itself)."""
    deadline = time.monotonic() + 60
    while True:
        state = slurm.run("sinfo", "-h", "-N", "-o", "%T").stdout.split()
        if state and state[0].rstrip("*~#") in ("idle", "mixed", "allocated"):
            return
        slurm.run("scontrol", "update", f"nodename={slurm.node_name}", "state=resume", check=False)
        assert time.monotonic() < deadline, f"node stuck in {state}"
        time.sleep(1)


def test_node_failure_fails_with_slurms_reason_and_backoff_limit_resubmits(
    rig: Rig, rest: SlurmRestClient
) -> None:
    marker = rig.slurm.jobs_dir / f"nodefail-{rig.ns}"
    once = f"#!/bin/bash\nif [ -e {marker} ]; then echo second; exit 0; fi\ntouch {marker}\nsleep 300\n"
    rig.start_bridge()
    doomed = rig.create("doomed", script="#!/bin/bash\nsleep 300\n")
    retried = rig.create("retried", script=once, backoffLimit=1)
    first = {n: rig.wait_phase(n, "Running")["jobId"] for n in ("doomed", "retried")}
    try:
        for job_id in first.values():
            # Debian's Slurm requeues batch jobs on node failure (JobRequeue=1); the
            # bridge submits with requeue off so the failure shows and backoffLimit
            # decides. Slurm must report that back for every job.
            shown = rig.slurm.run("scontrol", "show", "job", str(job_id)).stdout
            assert "Requeue=0" in shown, shown
        rig.slurm.run(
            "scontrol", "update", f"nodename={rig.slurm.node_name}", "state=down",
            "reason=vectorpipe-fault-test",
        )  # fmt: skip
        st = rig.wait_phase("doomed", "Failed")
    finally:
        _node_back(rig.slurm)
    assert (st["state"], st["reason"]) == ("NODE_FAIL", "NodeDown"), st
    assert "a node failed" in st["message"] and cond(st, "Failed")["status"] == "True"
    assert cond(st, "Failed")["reason"] == "NodeFail", cond(st, "Failed")
    assert [j.job_id for j in slurm_jobs_of(rest, doomed["metadata"]["uid"])] == [first["doomed"]]

    st = rig.wait_phase("retried", "Succeeded", timeout=120)
    assert st["submitAttempts"] == 2
    uid = retried["metadata"]["uid"]
    one, two = slurm_jobs_of(rest, uid)
    assert (one.job_id, one.state, one.comment) == (first["retried"], "NODE_FAIL", job_key(uid, 1))
    assert (two.state, two.comment, st["jobId"]) == ("COMPLETED", job_key(uid, 2), two.job_id)
    resub = [m for r, m in rig.events("retried") if r == "Resubmitting"]
    assert resub and "NODE_FAIL" in resub[0], resub


@pytest.mark.slow
def test_time_limit_fails_with_timeout_and_slurms_reason(rig: Rig, rest: SlurmRestClient) -> None:
    rig.start_bridge()
    sj = rig.create("late", script="#!/bin/bash\nsleep 600\n", timeLimit="1")
    job_id = rig.wait_phase("late", "Running")["jobId"]
    assert "TimeLimit=00:01:00" in rig.slurm.run("scontrol", "show", "job", str(job_id)).stdout
    # Slurm enforces limits on a 30 s sweep, and KillWait adds 5 s.
    st = rig.wait_phase("late", "Failed", timeout=180)
    assert (st["state"], st["reason"]) == ("TIMEOUT", "TimeLimit"), st
    assert "hit its time limit" in st["message"]
    assert cond(st, "Failed")["reason"] == "Timeout"
    (job,) = slurm_jobs_of(rest, sj["metadata"]["uid"])
    assert job.state == "TIMEOUT"


def test_apiserver_restart_while_the_bridge_follows_a_job(rig: Rig, rest: SlurmRestClient) -> None:
    bridge = rig.start_bridge()
    sj = rig.create("steady", script="#!/bin/bash\nsleep 12\necho steady\n")
    rig.wait_phase("steady", "Running")
    rig.k8s.restart_apiserver(down_for=6.0)
    st = rig.wait_phase("steady", "Succeeded", timeout=120)
    assert bridge.proc.poll() is None, "the bridge exited instead of reconnecting"
    (job,) = slurm_jobs_of(rest, sj["metadata"]["uid"])
    assert (job.job_id, st["submitAttempts"]) == (st["jobId"], 1)
    assert wait_slurm(rest, job.job_id, lambda j: j.is_terminal).state == "COMPLETED"
    assert rig.output("steady", job.job_id).strip() == "steady"
