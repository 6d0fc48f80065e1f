"""Stage 2: distributed k-means over the shards a stage-1 manifest lists.

`core` holds the numerics on plain numpy arrays (assignment, accumulation,
convergence; k-means++ and the best of `nInit` starts from `seeding`, centroid
update and empty clusters from `update`, Hamerly's bounds from `hamerly`) and
knows nothing of MPI; `distributed` runs Lloyd's algorithm over an mpi4py communicator with one
`Allreduce` per iteration and an initialisation that does not depend on the
number of ranks; `shard_io` reads a rank's rows and writes the clustering contract
(`assignments/`, `centroids.parquet`, `metrics.json`, `_SUCCESS`); `cli` is the
`mpirun -n P python -m vectorpipe_workloads.kmeans` entry point. Importing the
package does nothing: MPI starts only when the command line runs.
"""
