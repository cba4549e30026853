# imgsieve: `make demo` runs the main job, `make test` the whole test suite. Both set up first.
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup lint format test test-fast test-infra chaos demo demo-local local-up local-down clean

setup:
	@bash scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Two halves side by side: the deployed hosts' tests (tests/infra, tests/aws) and the rest (scripts/test.sh).
test: lint
	@bash scripts/test.sh

test-fast: setup
	$(PY) -m pytest -m "not slow"

test-infra: setup
	$(PY) -m pytest tests/infra

# Six faults and a bad-input job on a deployed copy of the local hosts (also part of make test); prints the table.
chaos: setup
	$(PY) -m pytest tests/infra/test_faults.py tests/infra/test_bad_input.py -s

# The main job, deployed as in production on this machine: local_up, site.yml, run_job, the rows, fab status.
demo: setup
	@bash scripts/deploy_demo.sh

# The same pipeline as plain processes on this machine (no containers), from S3 (moto) and from the folder.
demo-local: setup
	@bash scripts/demo.sh

# The local topology: Podman systemd containers with sshd (inventory/local), then `ansible-playbook site.yml`.
local-up: setup
	$(VENV)/bin/ansible-playbook playbooks/local_up.yml

local-down: setup
	$(VENV)/bin/ansible-playbook playbooks/local_down.yml

clean:
	rm -rf .cache/imgsieve data/demo
