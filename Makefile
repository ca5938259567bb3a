# Every workflow step is a target here, so everything CI does also runs locally.
# Set-up is automatic: any target that needs the environment creates it from uv.lock first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
# Use the uv on PATH, or install a private copy under .tools/ (needs only python3 and pip).
# UV=/path/to/uv chooses another. Resolved once, to an absolute path.
UV_ON_PATH := $(shell command -v uv 2>/dev/null)
UV_PRIVATE := $(CURDIR)/.tools/bin/uv
ifeq ($(origin UV),undefined)
UV := $(or $(UV_ON_PATH),$(UV_PRIVATE))
else ifeq ($(findstring /,$(UV)),)
override UV := $(shell command -v $(UV) 2>/dev/null)
endif
# Recipes and every process they start (dvc stages, tests, `bentoml build`, which runs `uv`)
# must find this same uv by name: put its folder first on PATH unless PATH already finds it.
# .tools/bin holds only uv and uvx, so nothing else is shadowed.
ifneq ($(UV),$(UV_ON_PATH))
export PATH := $(patsubst %/,%,$(dir $(UV))):$(PATH)
endif
RUN := $(UV) run --frozen --no-sync

export UV_PYTHON_DOWNLOADS := never
# Trust the system's CA store, as pip and git do: behind a TLS-inspecting proxy whose CA is
# installed system-wide, uv's built-in roots alone refuse every download.
export UV_SYSTEM_CERTS ?= 1
export ITERATIVE_DO_NOT_TRACK := 1
# Stages run as fresh processes; compiled bytecode keeps their start-up short even where
# PYTHONDONTWRITEBYTECODE is set.
export UV_COMPILE_BYTECODE := 1

BASE ?= origin/main

.PHONY: help setup tools run check-params repro test test-fast lint format check-workflows bench clean \
	pull check-stale report gate pr-check comment report-link verify-release containerize \
	smoke-test smoke-image push-image check-image test-image sign-image model-card github-release \
	monitor retrain retrain-pr \
	package serve bench-serve

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# uv's wheel installed with --target: .tools/bin gets uv and uvx and nothing else (no python3
# that would shadow yours). Reinstalled when UV_VERSION changes or .tools/ has an older layout.
UV_STAMP := $(CURDIR)/.tools/uv-$(UV_VERSION).installed
$(UV_PRIVATE): $(if $(wildcard $(UV_STAMP)),,FORCE)
	rm -rf .tools
	python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
		--target .tools uv==$(UV_VERSION)
	@touch $@ $(UV_STAMP)

.PHONY: FORCE
FORCE:

tools: ## show the uv (and python3) every recipe and the processes they start use
	@echo "uv: $$(command -v uv || echo 'none on PATH (run make setup)')"
	@echo "make uses: $(UV)"
	@echo "python3: $$(command -v python3 || echo none)"

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	@touch $@

setup: .venv/.synced ## create or update .venv from the committed lock file

# check-params first: DVC removes a stage's outputs before running it, and expands YAML aliases
# (an alias bomb hangs it), so a bad params.yaml must stop here, not inside `dvc repro`.
run: check-params ## run the whole DVC pipeline (only the stages whose inputs changed)
	$(RUN) dvc repro

# One command from your table to a working project: contract, cleaning, params, plots. FORCE=1
# replaces uncommitted work or an earlier adoption (see README, "Bring your own data").
.PHONY: adopt
adopt: setup ## DATA=<csv|parquet> TARGET=<column> [ID=<column>] [TASK=classification|regression]
	$(if $(DATA),,$(error set DATA=<your table: a CSV or Parquet file>))
	$(if $(TARGET),,$(error set TARGET=<the column to predict>))
	$(RUN) mlci adopt --data "$(DATA)" --target "$(TARGET)" $(if $(ID),--id "$(ID)") \
		$(if $(TASK),--task "$(TASK)") $(if $(FORCE),--force)

# Batch scoring with the approved model (models/model.skops as dvc.lock records it). With
# MLCI_DASK_SCHEDULER set, the partitions are scored on that Dask cluster.
.PHONY: predict
predict: setup ## INPUT=<csv|parquet|fsspec URL> OUTPUT=<parquet> [BAD_ROWS=<csv>]
	$(if $(INPUT),,$(error set INPUT=<the table to score: CSV or Parquet, path or URL>))
	$(if $(OUTPUT),,$(error set OUTPUT=<the Parquet file to write>))
	$(RUN) mlci predict --input "$(INPUT)" --output "$(OUTPUT)" $(if $(BAD_ROWS),--bad-rows "$(BAD_ROWS)")

check-params: setup ## refuse a bad params.yaml: keys, types, hyperparameters, aliases, size
	$(RUN) mlci check-params

# In parallel (pytest-xdist): `auto` is one worker more than cores (tests/conftest.py says why);
# TEST_WORKERS=0 runs in this process alone.
# --dist loadgroup: a module whose tests share a module-scoped fixture (a trained base, a running
# server) stays on one worker, in file order (tests/conftest.py), so that fixture is built once.
TEST_WORKERS ?= auto
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

test: setup ## run the whole test suite in parallel; prints its ten slowest tests
	$(RUN) pytest $(PYTEST_PARALLEL) --durations=10

test-fast: setup ## unit tests only
	$(RUN) pytest $(PYTEST_PARALLEL) tests/unit

lint: setup ## ruff lint and format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: setup ## apply ruff fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

# Exit 1 when the remote fails or lacks outputs; 0 when there is nothing to pull yet (no remote,
# nothing pushed). ALLOW_MISSING=1: outputs the remote lacks are fine (`make run` follows).
pull: setup ## fetch DVC-tracked data and models; fails on an unreachable or incomplete remote
	$(RUN) mlci pull $(if $(ALLOW_MISSING),--allow-missing)

check-stale: setup ## fail if dvc.lock is out of date with code, params or data
	$(RUN) mlci check-stale

report: setup ## write reports/pr/report.md comparing with BASE (default origin/main)
	$(RUN) mlci report --base $(BASE)

gate: setup ## exit non-zero when the model fails the merge gate against BASE
	$(RUN) mlci gate --base $(BASE)

pr-check: setup ## CI: params check, staleness check, dvc repro, report and gate against BASE
	$(RUN) mlci pr-check --base $(BASE)

# Needs no environment: the comment job must not install or run a pull request's code. Standard
# library only; posts through GitHub's REST API (GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_API_URL).
# REPORT_DIR: the downloaded artifact; HEAD_SHA, RUN_ID: the triggering run's commit and id.
comment: ## post REPORT_DIR's report as the one pull-request comment (CI: workflow_run job)
	$(if $(REPORT_DIR),,$(error set REPORT_DIR=<downloaded model-report artifact folder>))
	$(if $(HEAD_SHA),,$(error set HEAD_SHA=<commit the pull-request run built>))
	PYTHONPATH=src python3 -m mlci.review.comment --dir "$(REPORT_DIR)" --head-sha "$(HEAD_SHA)" \
		$(if $(RUN_ID),--run-id "$(RUN_ID)") $(if $(DRY_RUN),--dry-run)

# After actions/upload-artifact: its `artifact-url` output, for the comment to link the artifact
# itself (the poster checks it names an artifact of the triggering run).
report-link: ## CI: record the uploaded model-report artifact's address (ARTIFACT_URL) in reports/pr-link/
	$(if $(ARTIFACT_URL),,$(error set ARTIFACT_URL=<actions/upload-artifact's artifact-url output>))
	mkdir -p reports/pr-link
	printf '%s\n' "$(ARTIFACT_URL)" > reports/pr-link/artifact-url.txt

check-workflows: setup ## zizmor (pedantic, offline) and JSON-schema checks of .github/
	$(RUN) zizmor --offline --persona pedantic .github/workflows
	$(RUN) check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(RUN) check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml

# ---- release (GitHub runners: these need Docker and cosign) --------------------------------
BENTO ?= mlci_classifier:latest
IMAGE ?= ghcr.io/owner/repo
VERSION ?= 0.0.0
TAG ?= v$(VERSION)
DEFAULT_BRANCH ?= main

verify-release: setup ## check TAG may ship: vX.Y.Z, on the default branch, fresh dvc.lock, gate passes
	$(RUN) mlci verify-release --tag $(TAG) --default-branch $(DEFAULT_BRANCH)

containerize: setup ## build IMAGE:VERSION from the packaged Bento on the official base (needs Docker)
	$(RUN) mlci containerize --bento $(BENTO) --image $(IMAGE) --version $(VERSION)

smoke-test: setup ## smoke-test a running service at URL (default http://127.0.0.1:3000)
	$(RUN) mlci smoke-test --url $(or $(URL),http://127.0.0.1:3000)

# A free loopback port and a unique container name; a container that exits fails at once, and
# every failure prints the container's own log.
smoke-image: setup ## run IMAGE:VERSION, smoke-test it, remove it; shows its log on failure (Docker)
	$(RUN) mlci smoke-image --image $(IMAGE) --version $(VERSION)

# Never moves a version tag: the same image again or a re-run of the same release (same commit)
# is a no-op printing the digest already there; any other image under that tag is refused.
push-image: setup ## push IMAGE:VERSION unless the tag holds another image; prints digest=...
	$(RUN) mlci push-image --image $(IMAGE) --version $(VERSION)

# Runs the image as deploy/k8s/deployment.yaml does (user, read-only root, dropped capabilities,
# limits, env, emptyDirs as tmpfs, a Docker volume on the log folder), sends requests, checks
# the predictions reached the volume; size and start time go to bench/results/image.json.
check-image: setup ## run IMAGE:VERSION as Kubernetes would; predictions in the volume; size, start
	$(RUN) mlci check-image --image $(IMAGE) --version $(VERSION)

# Not part of `make test`: from a fresh clone, the model (`make run`), the Bento, the base
# (python:3.11-slim, or its Debian stand-in where it cannot be pulled: needs root and
# debootstrap), the image, `check-image`, then tests/image against it. Needs Docker.
TEST_IMAGE ?= mlci-test-image
test-image: run package ## build the image here and check it as Kubernetes would run it (Docker)
	$(RUN) mlci containerize --bento $(BENTO) --image $(TEST_IMAGE) --version test --standin-base
	$(RUN) mlci check-image --image $(TEST_IMAGE) --version test
	MLCI_TEST_IMAGE=$(TEST_IMAGE):test $(RUN) pytest tests/image -q -p no:cacheprovider

sign-image: ## keyless cosign signature of IMAGE@DIGEST (GitHub OIDC)
	cosign sign --yes $(IMAGE)@$(DIGEST)

model-card: setup ## write reports/release/model_card.md for VERSION, IMAGE, DIGEST
	$(RUN) mlci model-card --version $(VERSION) --image $(IMAGE) --digest $(DIGEST)

# GitHub calls (here, monitor PUBLISH=1, retrain-pr) go through the project's own client: GITHUB_TOKEN
# (or GH_TOKEN), GITHUB_REPOSITORY (or the origin remote), GITHUB_API_URL. No `gh` needed.
github-release: setup ## publish the GitHub Release of TAG (pushed) with the model card
	$(RUN) mlci github-release --tag $(TAG)

# ---- the loop: monitoring and retraining ---------------------------------------------------
monitor: setup ## drift + staleness on CURRENT (path or URL); PUBLISH=1 updates the GitHub issue
	$(RUN) mlci monitor --current "$(or $(CURRENT),$(MONITOR_SOURCE))" $(if $(PUBLISH),--publish) \
		$(if $(RETRAIN_ON_DRIFT),--dispatch-retrain)

retrain: setup ## re-run the pipeline, on SOURCE when given (a new data.source)
	$(RUN) mlci retrain $(if $(SOURCE),--source "$(SOURCE)")

retrain-pr: setup ## commit the re-run results on a branch, push it, open a pull request
	$(RUN) mlci retrain-pr --base $(DEFAULT_BRANCH)

bench: setup ## run the benchmarks and write bench/results/*.json
	$(RUN) python bench/pipeline_bench.py

# ---- serving (BENTOML_HOME chooses the model/bento store, default ~/bentoml) -----------------
SERVE_HOST ?= 127.0.0.1
SERVE_PORT ?= 3000

package: setup ## register the DVC-tracked model in BentoML and build the bento (no Docker)
	UV="$(UV)" $(RUN) mlci package

serve: setup ## register the model if needed, serve it on SERVE_HOST:SERVE_PORT (127.0.0.1:3000)
	$(RUN) mlci register-model
	$(RUN) bentoml serve mlci.serving.service:Classifier --host $(SERVE_HOST) --port $(SERVE_PORT)

bench-serve: setup ## benchmark the service over HTTP; writes bench/results/serve.json
	$(RUN) python bench/serve_bench.py

clean: ## remove pipeline outputs (the DVC cache keeps them: `dvc checkout` restores)
	rm -rf data/interim data/processed reports models/*.skops models/model_meta.json

# ---- drift and model age (mlci drift, mlci staleness) ----------------------------------------
.PHONY: drift staleness bench-drift

drift: setup ## CURRENT=<csv|parquet|jsonl|log folder> vs training data; exit 1 drift, 3 too few rows
	$(if $(CURRENT),,$(error set CURRENT=<data file, prediction log, or folder of *.jsonl logs>))
	$(RUN) mlci drift --current "$(CURRENT)" $(if $(REFERENCE),--reference "$(REFERENCE)") \
		$(if $(DRIFT_OUT),--out-dir "$(DRIFT_OUT)")

staleness: setup ## exit 1 when the production model is older than monitor.max_model_age_days
	$(RUN) mlci staleness

bench-drift: setup ## drift detection and false-alarm rates; writes bench/results/drift.json
	$(RUN) python bench/drift_bench.py
