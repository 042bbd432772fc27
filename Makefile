# lowbit: two commands on a fresh machine.
#   make demo   set up .venv and run lowbit's main job on a default model
#   make test   set up .venv and the system packages, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.lowbit-deps
LOCK   := flock build/.lock
PYTEST_ARGS ?=

.PHONY: demo test dev deps system-deps native build-arm bench clean

$(VPY):
	$(PYTHON) -m venv $(VENV)

# Python dependencies: build tools first, torch pinned exactly (any other requirement pulls a
# multi-GB CUDA build), then the project with its test extras.
$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install -q --upgrade "pip>=23"
	$(VPY) -m pip install -q scikit-build-core pybind11 ninja cmake
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q --no-build-isolation -e '.[test]'
	touch $(STAMP)

deps: $(STAMP)

# (Re)build the native extension into the editable install; serialized across shells.
dev: deps
	@mkdir -p build
	$(LOCK) $(VPY) -m pip install -q --no-build-isolation --no-deps -e .

system-deps:
	bash .ci/bootstrap.sh

demo: dev
	$(VPY) -m lowbit.demo

test: system-deps dev
	LOWBIT_REQUIRE_ALL=1 $(VPY) -m pytest -q -rs --durations=15 $(PYTEST_ARGS)

native:
	cmake -S native -B build/native -DCMAKE_BUILD_TYPE=Release
	cmake --build build/native -j2

build-arm: system-deps
	cmake -S native -B build/aarch64 -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/targets/toolchains/aarch64-linux-gnu.cmake
	cmake --build build/aarch64 -j2

bench: dev
	$(VPY) -m pip install -q '.[bench]' --no-build-isolation --no-deps
	$(VPY) bench/kernels.py

clean:
	rm -rf build
