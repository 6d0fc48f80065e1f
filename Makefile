# VectorPipe — entry points. `make help` lists them; the README's quick start
# is `make demo` and `make test`, each of which installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help
help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: system-deps
system-deps: ## Install the Debian packages (Open MPI, Slurm, munge, buildah, sample genomes)
	hack/install-system-deps.sh

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "uv==$(UV_VERSION)"
	# mpi4py is built from source so it links the Open MPI that `mpirun` is.
	# Bytecode is compiled at install: CI sets PYTHONDONTWRITEBYTECODE, and Ray
	# workers that recompile the stack on every start time out under load.
	$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python --require-hashes \
		--no-binary mpi4py requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

.PHONY: install
install: system-deps $(STAMP) ## Install system packages and the locked Python environment in .venv

.PHONY: lock
lock: ## Re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --all-extras --generate-hashes --python-version 3.11 \
		--python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock" -o requirements.lock

.PHONY: demo
demo: install ## Run the whole pipeline on the bundled sample data (local Ray + mpirun)
	$(BIN)/vectorpipe run examples/demo-pipeline.yaml

.PHONY: sample-data
sample-data: install ## Regenerate the bundled sample reads from Debian's genomes
	$(BIN)/python -m vectorpipe_workloads.sampledata --out examples/data

.PHONY: crds
crds: install ## Regenerate the CRDs in charts/vectorpipe/crds/ from the typed spec models
	$(BIN)/python hack/gen_crds.py

.PHONY: chart-crds
chart-crds: crds ## Alias of crds: the chart's CRDs have one source, the spec models

.PHONY: chart-lint
chart-lint: ## helm lint --strict charts/vectorpipe with the pinned helm (built by k8s-bins, cached)
	@helm="$$(hack/k8s/build.sh | tail -n 1)/helm" && \
		"$$helm" lint --strict charts/vectorpipe && \
		"$$helm" lint --strict charts/vectorpipe --set rbac.scope=namespaced --set 'rbac.namespaces={vectorpipe}'

.PHONY: argocd-cm
argocd-cm: install ## Regenerate charts/argocd/argocd-cm-patch.yaml from the health Lua scripts
	$(BIN)/python hack/lua/sync_cm.py

.PHONY: k8s-bins
k8s-bins: ## Build kube-apiserver, etcd, kubectl, helm, kwok, KubeRay from Go modules (cached)
	hack/k8s/build.sh

.PHONY: test-k8s
test-k8s: install k8s-bins ## Tests against a real kube-apiserver, controller-manager, kwok and the KubeRay operator
	$(BIN)/pytest -m k8s tests/k8s $(PYTEST_ARGS)

.PHONY: cluster
cluster: install k8s-bins ## Start a real one-node Kubernetes here (kubelet, containerd, KubeRay) with VectorPipe's images
	hack/cluster/images.sh build
	hack/cluster/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the one-node cluster and remove every trace of it (pods, mounts, network namespace)
	hack/cluster/cluster.sh down

.PHONY: test-node
test-node: install k8s-bins ## The node tier: helm install + a pipeline in real pods on the one-node cluster
	$(BIN)/pytest -m node tests/node $(PYTEST_ARGS)

.PHONY: lua-health
lua-health: ## Build the gopher-lua harness for the Argo CD health checks (cached)
	hack/lua/build.sh

.PHONY: images
images: install ## Build every container image with buildah from a debootstrap base
	hack/images/build.sh

.PHONY: lint
lint: install ## ruff lint + format check, import-linter layering contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

.PHONY: fmt
fmt: install ## Format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: typecheck
typecheck: install ## mypy --strict on the three packages
	$(BIN)/mypy

.PHONY: test
test: install lint typecheck k8s-bins lua-health ## Install, start the services the tests need, run the whole suite
	$(BIN)/python hack/gen_crds.py --check
	$(BIN)/pytest --durations=30 $(PYTEST_ARGS)

.PHONY: bench
bench: install k8s-bins ## Benchmarks vs baselines in one run → docs/benchmarks.md/.json (~20 min)
	$(BIN)/python -m bench.run --mode full

.PHONY: bench-small
bench-small: install k8s-bins ## The same benchmark harness on small inputs (CI; a few minutes) → build/bench-small/
	$(BIN)/python -m bench.run --mode small

.PHONY: quality
quality: install ## Clustering quality (ARI/NMI) of every embedding on simulated reads → build/quality/
	$(BIN)/python -m bench.run --mode quality

.PHONY: test-fast
test-fast: install ## Unit tests only
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: clean
clean: ## Remove the venv and build leftovers (caches outside the repo are kept)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist
