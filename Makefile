# SPDX-License-Identifier: MIT
# Convenience wrapper around CMake.  `make run`: build and run the main job;
# `make check`: build and run every test.  See README.md.
BUILD ?= build
ASAN_BUILD ?= build-asan
CMAKE_FLAGS ?=
NPROC := $(shell nproc)

# The kernel mechanisms Debian 12's own 6.1 lacks: check-fallback runs the
# suite as if the running kernel lacked them too (VMO_DISABLE, docs/design.md).
FALLBACK ?= continue-wp,poison,move,wp-async,pagemap-scan

.PHONY: all deps build run check check-layers check-fallback check-asan bench install uninstall clean

all: build

deps:
	@./scripts/deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j$(NPROC)

run: build
	scripts/run.sh $(BUILD)

check: build
	cd $(BUILD) && ctest --output-on-failure -j2 --timeout 900
	scripts/check-layers.sh $(BUILD)
	scripts/check-spdx.sh

# src/ calls and includes only downwards (docs/design.md, Layers)
check-layers: build
	scripts/check-layers.sh $(BUILD)

check-fallback: build
	cd $(BUILD) && VMO_DISABLE=$(FALLBACK) ctest --output-on-failure -j2 --timeout 900

check-asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DVMO_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j$(NPROC)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j2 --timeout 900

bench: build
	bench/run

install: build
	cmake --install $(BUILD)

uninstall:
	cmake --build $(BUILD) --target uninstall

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
