"""VectorPipe's benchmark harness (`make bench`, `make bench-small`, `make quality`).

Every number in docs/benchmarks.json comes from one run of `python -m bench.run`,
with its baselines measured in the same run on the same machine; see bench/run.py.
"""
