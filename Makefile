# geotarget: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
SAMPLE := data/sample
OUT    := out

.PHONY: demo test install install-test bench bench-lookup bench-service notebooks screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server,basemap]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server,test,bench,spark,dp,basemap]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(SAMPLE)/customers.csv: | $(VENV)/.installed
	$(BIN)/python data/generate_sample.py $(SAMPLE)

demo: $(VENV)/.installed $(SAMPLE)/customers.csv
	$(BIN)/geotarget ingest customers $(SAMPLE)/customers.csv
	$(BIN)/geotarget ingest stores $(SAMPLE)/stores.csv
	$(BIN)/geotarget ingest regions $(SAMPLE)/neighborhoods.geojson --layer sample_hoods --id-col hood_id
	$(BIN)/geotarget info
	$(BIN)/geotarget audience --store S001 --radius 2mi -o $(OUT)/audience_S001_2mi.csv
	$(BIN)/geotarget heatmap --res 8 --metric count -o $(OUT)/heatmap.html --png $(OUT)/heatmap.png
	$(BIN)/geotarget map coverage --radius 2mi --all-stores -o $(OUT)/coverage.html --png $(OUT)/coverage.png
	@echo "database: $$(pwd)/geotarget.duckdb"
	@echo "2-mile audience of S001: $$(pwd)/$(OUT)/audience_S001_2mi.csv"
	@echo "heatmap: $$(pwd)/$(OUT)/heatmap.html"
	@echo "coverage map: $$(pwd)/$(OUT)/coverage.html"

test: $(VENV)/.installed-test
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-java.sh
	$(BIN)/python -m pytest -q

# The reverse lookup and the HTTP service, then geotarget against PostGIS, DuckDB SQL, GeoPandas and
# BallTree, then the ingest stage by stage (on the 1M Parquet file the run generated), then the lift readout
# (10M assigned customers, 50M outcomes) against a DuckDB SQL join-and-aggregate; benchmarks/RESULTS.md
# holds every figure (the lookup, service and ingest-stage reports quoted from their own files).
# Override the sizes with e.g. `make bench BENCH_ARGS="--sizes 1e6"`, or `BENCH_ARGS=--quick`.
BENCH_ARGS ?= --sizes 1e6,1e7
# Device pings, embedded against Spark local[2]: 100M pings by default (e.g. PINGS_BENCH_ARGS="--pings 2e6").
PINGS_BENCH_ARGS ?= --pings 1e8
bench: $(VENV)/.installed-test
	$(BIN)/python -m benchmarks.lookup
	$(BIN)/python -m benchmarks.service_load
	$(BIN)/python -m benchmarks.disclosure
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.ingest_profile
	$(BIN)/python -m benchmarks.trade
	$(BIN)/python -m benchmarks.pings_spark $(PINGS_BENCH_ARGS)
	$(BIN)/python -m benchmarks.lift
	$(BIN)/python -m benchmarks.privacy
	$(BIN)/python -m benchmarks.vector_memory
	$(BIN)/python -m benchmarks $(BENCH_ARGS) --render

# In-process latency of stores_near / promotions_at; writes benchmarks/RESULTS_lookup.md.
bench-lookup: $(VENV)/.installed-test
	$(BIN)/python -m benchmarks.lookup

# Load test of `geotarget serve` on 127.0.0.1 (20 clients, 10 s), then lookups while the same server ingests
# 1M rows (--ingest-rows); writes benchmarks/RESULTS_service.md.
bench-service: $(VENV)/.installed-test
	$(BIN)/python -m benchmarks.service_load

# Executes every notebook (kernel: this venv's Python); executed copies go to out/notebooks/.
# `make test` runs them too (tests/test_notebooks.py).
notebooks: $(VENV)/.installed-test
	$(BIN)/python scripts/notebooks.py run --out $(OUT)/notebooks

# Redraws the README's pictures (docs/img/*.png) from the seeded sample with geotarget's PNG output.
screenshots: $(VENV)/.installed
	$(BIN)/python scripts/screenshots.py --out docs/img

clean:
	rm -rf $(OUT) geotarget.duckdb geotarget.duckdb.wal
