# Set-up and everyday commands. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Model files: ../shared/models beside the checkout when present, else facefind downloads them.
export FACEFIND_MODELS ?= $(wildcard $(abspath ../shared/models))

.PHONY: install test lint browser screenshots demo bench bench-install clean

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# Both cores: one pytest worker each, a test file's tests on one worker (they share its fixtures).
test: lint browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The web UI tests drive Debian's Chromium (Playwright's own browser download needs the internet).
# As root with apt it is installed here; otherwise tests/test_web_ui.py skips and says why.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x "$(CHROMIUM)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium for the web UI tests (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	fi

# The README's screenshots, taken by the web UI tests from a real browser.
screenshots: install browser
	FACEFIND_SCREENSHOTS=$(abspath docs/screenshots) $(BIN)/python -m pytest -q tests/test_web_ui.py \
		tests/test_publish_service.py -k "page"

# make demo PHOTOS=~/Pictures QUERY=me.jpg [DB=photos.db]
demo: install
	@test -n "$(PHOTOS)" -a -n "$(QUERY)" || { echo "usage: make demo PHOTOS=folder QUERY=photo.jpg"; exit 2; }
	$(BIN)/facefind collection list $(if $(DB),--db "$(DB)") | grep -q '^default:' || \
	  $(BIN)/facefind collection create default --owner "$${USER:-me}" --basis own --retention 10y $(if $(DB),--db "$(DB)")
	$(BIN)/facefind index "$(PHOTOS)" $(if $(DB),--db "$(DB)") || test $$? -eq 3
	$(BIN)/facefind search "$(QUERY)" --purpose "make demo" $(if $(DB),--db "$(DB)")

bench-install: install $(VENV)/.bench
$(VENV)/.bench: pyproject.toml
	$(BIN)/pip install --quiet -e '.[bench]'
	# face_recognition requires `dlib` (a source build); dlib-bin provides the same module.
	$(BIN)/pip install --quiet --no-deps face_recognition
	touch $@

bench: bench-install
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/accuracy_bench.py
	$(BIN)/python bench/search_bench.py
	$(BIN)/python bench/index_bench.py --faces 100000   # docs/benchmarks.md also has 1M and 10M runs (10M HNSW: hours, use --checkpoint)
	$(BIN)/python bench/people_bench.py
	$(BIN)/python bench/filter_bench.py
	$(BIN)/python bench/rebuild_bench.py
# Longer, run by hand (docs/benchmarks.md): openset_bench, optout_bench, pipeline_bench, api_bench,
# server_bench (PostgreSQL; 1M: ~1 h), dask_bench.

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
