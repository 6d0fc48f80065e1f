"""The RayJob mirror in the pipeline's status: RayCluster name, dashboard URL, Ray job id."""

from __future__ import annotations

from vectorpipe_api.pipeline_status import RayStatus
from vectorpipe_operator.status import Observed, compute_status
from vectorpipe_operator.views import RayJobView, ray_status

KUBERAY_STATUS = {
    # What KubeRay v1.5.0 writes on a running RayJob (rayjob_types.go RayJobStatus).
    "jobId": "r42-etl-hz4bn",
    "rayClusterName": "r42-etl-x7k2p",
    "dashboardURL": "r42-etl-x7k2p-head-svc.ns.svc.cluster.local:8265",
    "jobStatus": "RUNNING",
    "jobDeploymentStatus": "Running",
    "startTime": "2025-01-01T00:00:00Z",
    "rayClusterStatus": {"state": "ready"},
    "observedGeneration": 1,
}


def test_view_reads_the_kuberay_fields() -> None:
    view = RayJobView.from_object({"metadata": {"name": "r42-etl"}, "status": KUBERAY_STATUS})
    assert (view.cluster_name, view.dashboard_url, view.job_id) == (
        "r42-etl-x7k2p",
        "r42-etl-x7k2p-head-svc.ns.svc.cluster.local:8265",
        "r42-etl-hz4bn",
    )
    assert RayJobView.from_object({"metadata": {"name": "r42-etl"}}).cluster_name == ""


def test_status_mirror_uses_kuberays_names() -> None:
    view = RayJobView.from_object({"metadata": {"name": "r42-etl"}, "status": KUBERAY_STATUS})
    status = compute_status(
        generation=1,
        old={},
        output_uri="/out/",
        observed=Observed(rayjob=view),
        now="2025-01-01T00:00:05Z",
    )
    assert status["ray"] == {
        "rayJob": "r42-etl",
        "jobStatus": "RUNNING",
        "jobDeploymentStatus": "Running",
        "startTime": "2025-01-01T00:00:00Z",
        "rayClusterName": "r42-etl-x7k2p",
        "dashboardURL": "r42-etl-x7k2p-head-svc.ns.svc.cluster.local:8265",
        "jobId": "r42-etl-hz4bn",
    }
    # Read back (a later pass that could not read the RayJob keeps the last mirror).
    assert ray_status(None, status) == RayStatus.model_validate(status["ray"])
    assert ray_status(None, status).dashboard_url == KUBERAY_STATUS["dashboardURL"]  # type: ignore[union-attr]


def test_fields_not_yet_written_stay_out_of_the_status() -> None:
    view = RayJobView.from_object(
        {"metadata": {"name": "r42-etl"}, "status": {"jobDeploymentStatus": "Initializing"}}
    )
    status = compute_status(
        generation=1,
        old={},
        output_uri="/out/",
        observed=Observed(rayjob=view),
        now="2025-01-01T00:00:05Z",
    )
    assert status["ray"] == {"rayJob": "r42-etl", "jobDeploymentStatus": "Initializing"}
