# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCKS  := requirements/test.txt requirements/browser.txt
CODE   := course tests bench datasets/coursedata
# pytest-xdist workers of the test targets: one process by default; `make test JOBS=2` spreads the tests over two,
# slowest first (not the default yet: its last full run on 2 cores is what made notebook loading count CPU time too)
JOBS   ?= 1
XDIST  := $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist loadgroup)
XDIST_NB := $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist loadfile)

.PHONY: setup sandbox database browser hub demo audit lint types test test-fast test-tooling test-notebooks test-browser gpu-check release lock clean

setup: $(STAMP) sandbox

# bubblewrap isolates every submission while it is graded (README, "Security model"); installed where we can
sandbox:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing bubblewrap"; \
	    apt-get -qq -o Acquire::http::Timeout=20 -o Acquire::Retries=1 update >/dev/null || true; \
	    DEBIAN_FRONTEND=noninteractive apt-get -qq -o Acquire::http::Timeout=20 install -y bubblewrap >/dev/null; \
	  else \
	    echo "bubblewrap is not installed: grading will refuse to run until it is (apt-get install bubblewrap)"; \
	  fi; }

# the sharded-grading test starts a PostgreSQL server of its own (Debian's postgresql; its server binaries only)
database:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing postgresql"; \
	    apt-get -qq -o Acquire::http::Timeout=20 -o Acquire::Retries=1 update >/dev/null || true; \
	    DEBIAN_FRONTEND=noninteractive apt-get -qq -o Acquire::http::Timeout=20 install -y --no-install-recommends postgresql >/dev/null; \
	  else \
	    echo "postgresql is not installed: the sharded-grading test will fail until it is (apt-get install postgresql)"; \
	  fi; }

# the browser test drives Debian's chromium through Playwright (Playwright's own browser download is not used)
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium"; \
	    apt-get -qq -o Acquire::http::Timeout=20 -o Acquire::Retries=1 update >/dev/null || true; \
	    DEBIAN_FRONTEND=noninteractive apt-get -qq -o Acquire::http::Timeout=20 install -y chromium >/dev/null; \
	  else \
	    echo "chromium is not installed: the browser test will fail until it is (apt-get install chromium)"; \
	  fi; }

# the JupyterHub test's proxy: configurable-http-proxy from npm into .hub/, every package pinned by the lock file
# in requirements/hub-proxy/ (Node.js 20 or later; JupyterHub itself is in requirements/test.txt)
HUB_PROXY := .hub/node_modules/.bin/configurable-http-proxy
hub: $(HUB_PROXY)

$(HUB_PROXY): requirements/hub-proxy/package.json requirements/hub-proxy/package-lock.json
	@if command -v npm >/dev/null; then \
	  mkdir -p .hub && cp requirements/hub-proxy/package.json requirements/hub-proxy/package-lock.json .hub/ && \
	  npm ci --prefix .hub --no-audit --no-fund --loglevel=error && touch $@; \
	else \
	  echo "npm is not installed: the JupyterHub test will fail until it is (Node.js 20 or later, then make hub)"; \
	fi

# the exact pins of every set (requirements/*.txt); the course package itself is installed editable
$(STAMP): $(LOCKS) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(addprefix -r ,$(LOCKS))
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# after changing a requirements/*.in file: the exact pins again (pins already in the .txt files are kept)
lock: setup
	for set in grading course student test browser; do \
	  $(BIN)/pip-compile --quiet --no-header --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	    --output-file requirements/$$set.txt requirements/$$set.in; done

release: setup
	$(BIN)/course release

demo: setup
	$(BIN)/course demo week1

# every cataloged mistake and alternative graded: which tests catch what (also run by `make test`)
audit: setup
	$(BIN)/course audit

# lint and formatting (ruff), the layers of the tooling package (import-linter)
lint: setup
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/lint-imports

# types of the tooling package
types: setup
	$(BIN)/mypy

# the edit-test loop: lint, types, the tooling's unit tests and one small grading round trip
test-fast: lint types
	$(BIN)/pytest -q $(XDIST) -m "not slow" tests --ignore=tests/browser

# unit tests of the tooling, the hidden suites against reference / release / mistakes, release/ freshness
test-tooling: setup database hub
	$(BIN)/pytest -q $(XDIST) --durations=10 tests --ignore=tests/browser

# the source notebooks, solutions included, run end to end
test-notebooks: setup
	MPLBACKEND=Agg OMP_NUM_THREADS=1 $(BIN)/pytest -q $(XDIST_NB) -p no:cacheprovider --nbval-lax --nbval-cell-timeout=600 --durations=20 source

# a student's session in JupyterLab, in headless chromium; screenshots in screenshots/
test-browser: setup browser
	$(BIN)/pytest -q -p no:cacheprovider tests/browser

test: lint types test-tooling test-notebooks test-browser

# on a machine with a CUDA device: every source notebook end to end on it (each picks cuda when it is there),
# then every week's demo class graded (grading itself runs on the CPU, in the sandbox)
gpu-check: setup
	$(BIN)/python -c "import sys, torch; sys.exit(None if torch.cuda.is_available() else 'gpu-check: no CUDA device here')"
	MPLBACKEND=Agg $(BIN)/pytest -q -p no:cacheprovider --nbval-lax --nbval-cell-timeout=600 --durations=20 source
	for a in $$($(BIN)/python -c "from course import config; print(*config.load().assignments)"); do \
	  $(BIN)/course demo $$a --no-gradebook || exit 1; done

clean:
	rm -rf $(VENV) gradebook.db demo feedback reports autograded
