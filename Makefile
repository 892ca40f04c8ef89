# The two commands a newcomer needs: `make demo` (set up + train on the embedded data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_ITERS ?= 1200

.PHONY: demo test test-fast results install install-all clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install: $(PY)
	$(PY) -m pip install -q -e .

install-all: $(PY)
	$(PY) -m pip install -q -e ".[all]"
	$(PY) -m pip install -q --no-deps "tflite-support==0.4.4"  # metadata binding for --mediapipe (see pyproject)
	$(PY) -m pip install -q --no-deps "ultralytics==8.4.190"  # the YOLO26n-sem peer (see pyproject's peers extra)
	@ldconfig -p 2>/dev/null | grep -q libusb-1.0 || { command -v apt-get >/dev/null && \
	  (apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1 || sudo apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1) || \
	  echo "warning: Debian's libusb-1.0-0 is missing (needed by tflite-support for --mediapipe)"; }

demo: install
	$(PY) -m edgeseg.train --backbone mobilenetv3 --iters $(DEMO_ITERS) --out runs/demo
	$(PY) -m edgeseg.evaluate --checkpoint runs/demo/best.pt
	$(PY) -m edgeseg.predict --checkpoint runs/demo/best.pt --source examples --out runs/demo/predictions

# Every published table: docs/*.md stamped (commit, checkpoints, machine, date), README's blocks copied from them.
# FAST=1: tiny budgets into runs/report-fast (what CI runs); STEPS=a,b or STEPS=all (adds zeroshot).
results: install-all
	$(PY) -m benchmarks.report $(if $(FAST),--fast) $(if $(STEPS),--steps $(STEPS))

test: install-all
	$(PY) -m pytest -q -ra --durations=25

test-fast: install-all
	$(PY) -m pytest -q -ra -m "not slow"

clean:
	rm -rf runs .pytest_cache
