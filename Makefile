# A thin layer over meson. The two commands a new machine needs:
#   make quickstart   install what is missing, build, run a local weft network
#   make test         install what is missing, build, run every test suite
# Both must be run as root on a fresh Debian 12 machine (apt-get installs).

BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
FUZZ_SECONDS ?= 30
MESON_FLAGS ?=
WERROR      := $(if $(CI),-Dwerror=true,)

.PHONY: all deps deps-test build quickstart test unit integration mesh-test asan fuzz bench clean compose-test

all: build

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(WERROR) $(MESON_FLAGS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

quickstart: build
	scripts/quickstart.sh $(BUILD)

# Every suite: unit and integration in the normal build, the same again under
# ASan+UBSan, then each fuzz target for FUZZ_SECONDS.
test: deps-test
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory unit integration
	$(MAKE) --no-print-directory mesh-test
	$(MAKE) --no-print-directory asan
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory compose-test
	@echo "make test: all suites passed"

unit: build
	meson test -C $(BUILD) --print-errorlogs --suite unit

integration: build
	tests/integration/run.sh $(BUILD)

# Routers, edges and the controller in network namespaces; prints
# "mesh: skipped: <reason>" and passes where namespaces cannot be made.
mesh-test: build
	tests/mesh/run.sh $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) $(WERROR) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

asan: deps-test $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  meson test -C $(ASAN_BUILD) --print-errorlogs --suite unit
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  tests/integration/run.sh $(ASAN_BUILD)

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

fuzz: deps-test $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# The container images and compose network; skips itself (exit 0) where dockerd
# cannot run.
compose-test:
	tests/compose/run.sh

bench: build
	tests/bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
