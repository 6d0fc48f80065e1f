"""VectorPipe's API: the typed models of both custom resources, shared by every component.

`base` holds what every model is built from (SpecModel, StatusModel,
Condition, CEL helpers, shared patterns), `meta` the API coordinates,
`pipeline` / `pipeline_status` / `pipeline_names` the VectorPipeline's spec,
status and child naming, and `slurmjob` the SlurmJob's spec and status. The
operator, the slurm-bridge, the workloads and the CRD generator import these;
this package imports nothing of theirs (import-linter checks it), and nothing
but pydantic.
"""
