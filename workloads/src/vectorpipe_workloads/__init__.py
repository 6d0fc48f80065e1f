"""VectorPipe's workloads: the two stages, the contracts between them, and the local runner.

`etl` is stage 1 (reads to k-mer embedding shards on Ray) and `kmeans` is
stage 2 (distributed k-means under mpirun). What they hand each other lives
at the top level, where the operator may import it without either stage:
`manifest` (the commit point and the stage-2 command line), `shards` (the
shard schema and reading a shard) and `storage` (local paths and S3). The
rest is the `vectorpipe` command: `cli` (arguments and exit codes),
`commands` (what each subcommand does and shows), `runner` (both stages and
the report on this machine), `pipeline_file` (the YAML file), `report` (the
HTML run report) and `sampledata` (the bundled demo reads). Importing the
package imports nothing.
"""
