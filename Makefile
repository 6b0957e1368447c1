# The two commands of the README: `make demo` and `make test`. Both create the environments when missing.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# The Blender LTS releases the Blender-side tests run on besides requirements.txt's bpy (5.0), each in its
# own environment .venv-bpyNN that holds that bpy (and geo4d) and reads every other package, pinned by
# requirements.txt, from $(VENV) through a .pth file (a full second and third install took 6 minutes each).
BPY_42 := 4.2.23
BPY_45 := 4.5.15
LTS_VENVS := .venv-bpy42 .venv-bpy45
# The tests that import bpy; the rest (the engine) runs once, in $(VENV).
BLENDER_TESTS := tests/blender tests/test_build.py
# pytest-xdist processes for the bpy 5.0 run (CI has two cores; `make test TEST_WORKERS=8` on a bigger
# machine). Each test file runs whole in one process, so a module's fixtures (a rendered clip, a Ray
# cluster, the fuzz suite's batches) are still computed once.
TEST_WORKERS ?= 2

.PHONY: test test-lts lint format demo bench extension clean

$(VENV)/.installed: requirements.txt core/worker_requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

.venv-bpy%/.installed: $(VENV)/.installed
	test -x $(@D)/bin/python || $(PYTHON) -m venv $(@D)
	$(@D)/bin/python -m pip install -q --no-deps bpy==$(BPY_$*)
	$(@D)/bin/python -m pip install -q --no-deps -e .
	$(PY) -c "import sysconfig; print(sysconfig.get_path('purelib'))" > \
		"$$($(@D)/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))")/geo4d-shared.pth"
	touch $@

test: $(VENV)/.installed $(LTS_VENVS:=/.installed) lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile
	$(MAKE) --no-print-directory test-lts

# The two LTS runs side by side, one process each (their Blender tests wait on subprocesses much of the
# time); --output-sync prints each run's output whole when it ends.
test-lts: $(LTS_VENVS:=/.installed)
	$(MAKE) --no-print-directory -j $(words $(LTS_VENVS)) --output-sync=target $(LTS_VENVS:.venv-bpy%=test-bpy%)

test-bpy%: .venv-bpy%/.installed
	.venv-bpy$*/bin/python -m pytest -q $(BLENDER_TESTS)

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.installed
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

demo: $(VENV)/.installed
	$(PY) -m geo4d demo -o demo_output

extension: $(VENV)/.installed
	$(PY) build.py

clean:
	rm -rf $(VENV) $(LTS_VENVS) build dist demo_output
