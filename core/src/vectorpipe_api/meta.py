"""API coordinates of the resources VectorPipe defines and the ones it drives.

The group and version both CRDs are served under, each kind's plural, and
KubeRay's RayJob coordinates: everything the operator, the slurm-bridge and
the CRD generator must spell the same way.
"""

from __future__ import annotations

GROUP = "vectorpipe.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

PIPELINE_KIND = "VectorPipeline"
PIPELINE_PLURAL = "vectorpipelines"

SLURMJOB_KIND = "SlurmJob"
SLURMJOB_PLURAL = "slurmjobs"

RAY_GROUP = "ray.io"
RAY_VERSION = "v1"
RAYJOB_KIND = "RayJob"
RAYJOB_PLURAL = "rayjobs"
