# litesafe - the two commands of the README, and a few helpers.
#   make demo    install what is missing, build, run the demo on a local database
#   make check   install what is missing, build, run every test (ctest)
# (sh setup.sh demo|check does the same on a machine without make.)
#   make fresh-check   both commands on a new minimal Debian 12 in a chroot
#                      (scripts/fresh-machine-check.sh; minutes, not part of CI)
#   make install       the command, the libraries, headers, litesafe.pc, man pages,
#                      the systemd unit, bash completion (PREFIX, DESTDIR)
#   make uninstall     removes what the last make install installed (same DESTDIR)
#   make deb           Debian packages in DEBDIR (scripts/make-deb.sh)
#   make fuzz          every libFuzzer target of tests/fuzz for FUZZ_SECONDS each
#                      (clang build in build-fuzz; corpora and findings in
#                      build-fuzz/fuzz; docs/reliability.md)
#   make fuzz-smoke    the same targets for a few seconds each, as tests (CI)
#   make tsan          ThreadSanitizer build: the unit tests and the replication
#                      integration tests (the engine is multi-threaded; not in CI)
#   make crash         the crash-consistency tests with CRASH_KILLS kill -9 points
#                      of the replicator per backend (file, S3; CI runs 12) and
#                      WRITER_KILLS of the application (CI runs 6)
#   make powercut      power cuts of the spool and a file replica at POWERCUT_KILLS
#                      kill -9 points (tests/powercut; CI runs 8)
#   make valgrind      the unit tests and integration tests of the command under
#                      valgrind memcheck (scripts/valgrind.sh; not part of CI)
BUILD ?= build
PREFIX ?= /usr/local
DESTDIR ?=
DEBDIR ?= $(BUILD)/deb
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

FUZZ_SECONDS ?= 60

.PHONY: all deps deps-build build check unit asan demo bench fresh-check clean install uninstall deb \
	fuzz fuzz-build fuzz-smoke valgrind tsan crash powercut soak

all: build

# everything the tests need; deps-build: only what the build and the demo need
deps:
	@scripts/deps.sh

deps-build:
	@scripts/deps.sh build

build: deps-build
	@cmake -S . -B $(BUILD) -DLS_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

check: deps build
	cd $(BUILD) && ctest --output-on-failure --no-tests=error -j $(JOBS)

unit: deps build
	cd $(BUILD) && ctest --output-on-failure --no-tests=error -L unit

# AddressSanitizer + UndefinedBehaviorSanitizer build; runs the unit tests, and the
# integration tests against the sanitized binary (leaks fail a command's exit code).
asan: deps
	@cmake -S . -B $(BUILD)-asan -DLS_WERROR=ON -DLS_SANITIZE=ON -DLS_INTEGRATION=ON >/dev/null
	@cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --no-tests=error -j $(JOBS)

# libFuzzer: a clang build of the library with the fuzz targets (no other tests).
fuzz-build: deps
	@cmake -S . -B $(BUILD)-fuzz -DCMAKE_C_COMPILER=clang -DLS_WERROR=ON -DLS_FUZZ=ON >/dev/null
	@cmake --build $(BUILD)-fuzz -j $(JOBS) --target fuzz_targets

fuzz: fuzz-build
	@scripts/fuzz.sh all $(BUILD)-fuzz $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	cd $(BUILD)-fuzz && ctest --output-on-failure --no-tests=error -L fuzz -j $(JOBS)

# A data race or a lock-order inversion stops the process (exit 66): the test fails.
TSAN_TESTS ?= unit|test_replicate$$|test_replicate_stop|test_reload|test_control|test_compaction
tsan: deps
	@cmake -S . -B $(BUILD)-tsan -DLS_WERROR=ON -DLS_TSAN=ON >/dev/null
	@cmake --build $(BUILD)-tsan -j $(JOBS)
	cd $(BUILD)-tsan && TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
		ctest --output-on-failure --no-tests=error -j $(JOBS) -R '$(TSAN_TESTS)'

CRASH_KILLS ?= 120
WRITER_KILLS ?= 100
crash: deps build
	@d=$$(mktemp -d) && /usr/bin/python3 tests/servers/testservers.py start $$d >/dev/null && \
	LS_TEST_SERVERS=$$d/servers.env LITESAFE_CRASH_KILLS=$(CRASH_KILLS) \
	LITESAFE_WRITER_KILLS=$(WRITER_KILLS) \
	LITESAFE_BIN=$(CURDIR)/$(BUILD)/litesafe PYTHONDONTWRITEBYTECODE=1 \
	/usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/integration/test_crash_consistency.py \
	tests/integration/test_replicate_crash.py::test_kill9_writer_mid_transaction; \
	rc=$$?; /usr/bin/python3 tests/servers/testservers.py stop $$d >/dev/null; rm -rf $$d; exit $$rc

POWERCUT_KILLS ?= 100
powercut: deps build
	LITESAFE_POWERCUT_KILLS=$(POWERCUT_KILLS) LITESAFE_BIN=$(CURDIR)/$(BUILD)/litesafe \
	LS_POWERCUT_LIB=$(CURDIR)/$(BUILD)/tests/powercut/powercut.so PYTHONDONTWRITEBYTECODE=1 \
	/usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/integration/test_powercut.py

# A soak run (never in CI): DURATION seconds of mixed work and trouble; see tests/soak/soak.py.
DURATION ?= 3600
soak: deps build
	LITESAFE_BIN=$(CURDIR)/$(BUILD)/litesafe PYTHONDONTWRITEBYTECODE=1 \
	/usr/bin/python3 tests/soak/soak.py --duration $(DURATION) $(if $(SOAK_SEED),--seed $(SOAK_SEED))

valgrind: deps build
	@scripts/valgrind.sh $(BUILD)

demo: build
	@scripts/demo.sh $(BUILD)/litesafe

bench: build
	@bench/run.sh $(BUILD)/litesafe

fresh-check:
	@scripts/fresh-machine-check.sh

# The list of what was installed is kept (build/installed-files.txt) for uninstall.
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"
	cp $(BUILD)/install_manifest.txt $(BUILD)/installed-files.txt

uninstall:
	@scripts/uninstall.sh $(BUILD)/installed-files.txt "$(DESTDIR)"

deb: build
	@scripts/make-deb.sh $(BUILD) $(DEBDIR)

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz $(BUILD)-tsan
