# litesafe - the two commands of the README, and a few helpers.
#   make demo    install what is missing, build, run the demo on a local database
#   make check   install what is missing, build, run every test (ctest)
BUILD ?= build
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build check unit asan demo bench clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DLS_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

check: build
	cd $(BUILD) && ctest --output-on-failure --no-tests=error -j $(JOBS)

unit: build
	cd $(BUILD) && ctest --output-on-failure --no-tests=error -L unit

# AddressSanitizer + UndefinedBehaviorSanitizer build; runs the unit tests, and the
# integration tests against the sanitized binary (leaks fail a command's exit code).
asan: deps
	@cmake -S . -B $(BUILD)-asan -DLS_WERROR=ON -DLS_SANITIZE=ON -DLS_INTEGRATION=ON >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --no-tests=error -j $(JOBS)

demo: build
	@scripts/demo.sh $(BUILD)/litesafe

bench: build
	@bench/run.sh $(BUILD)/litesafe

clean:
	rm -rf $(BUILD) $(BUILD)-asan
