# Two commands do all the set-up: `make run` opens the app, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench system-deps

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	# Compile the numba loops into their disk cache now (~15 s), not while the first frame waits.
	$(PY) -c "from models import cpu_kernels, winograd; cpu_kernels.warm_up(); winograd.warm_up()"
	touch $@

# Xvfb, Mesa's software OpenGL and xdotool for the window tests (installed when missing).
system-deps:
	@bash scripts/system_deps.sh

run: $(VENV)/.installed
	$(PY) run_app.py $(ARGS)

test: $(VENV)/.installed system-deps
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) bench/speed.py
