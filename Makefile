# The two commands of the README: `make demo` and `make test`.
# Everything else here is what they need, installed on first use.

PYTHON ?= python3
# Test processes (pytest-xdist): each has its own broker, model and ClickHouse databases.
TEST_WORKERS ?= 2
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)

.PHONY: setup kernels demo test bench lint unit integration clickhouse clickhouse-stop chromium clean

setup: $(STAMP) $(VENV)/share/compose-spec/compose_spec.json

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c requirements.lock -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $@

# The state kernels (numba) compiled into their on-disk cache once, about 11 s on a
# fresh checkout, so that no worker compiles them at start; 0.4 s once cached.
kernels: setup
	@$(BIN)/python -c 'from features.block.engine import warm_up_kernels as warm; \
		print(f"state kernels ready in {warm():.1f} s")'

demo: setup kernels
	$(BIN)/callguard demo

# Throughput, latency and memory against the ceiling and the baseline (bench/pipeline.py),
# then where a batched worker's CPU goes (py-spy, bench/profile_worker.py).
bench: setup
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.profile_worker

$(VENV)/share/compose-spec/compose_spec.json: | $(STAMP)
	bash scripts/compose-schema.sh $@

clickhouse:
	bash scripts/clickhouse-server.sh ensure

chromium:
	bash scripts/chromium.sh ensure

clickhouse-stop:
	bash scripts/clickhouse-server.sh stop

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: setup
	$(BIN)/python -m pytest -m "not integration and not e2e" -q

test: setup kernels clickhouse chromium lint
	$(BIN)/python -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist worksteal

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache
