# The README's two commands: `make demo` and `make test`. Both install what
# they need first: Debian packages (as root), then MCR into ./.venv.
# Network namespaces need root: run as root or with sudo.

VENV    := .venv
PY      := $(VENV)/bin/python
# socat: the relay the benchmark (and its smoke test and notebook) compares MCR with;
# socat and iperf (iperf2): senders and receivers we did not write, in
# tests/test_relay_applications.py; frr: FRRouting's pimd, the IGMP querier
# MCR's querier is tested against (tests/test_igmp_interop.py); systemd: systemd-analyze
# verifies the service units (tests/test_service_units.py, which also needs setpriv from
# util-linux); clang-14 and libclang-rt-14-dev (libFuzzer): the fuzz targets (tests/fuzz); nftables:
# counts packets by priority on a relay's egress hook (tests/test_relay_qos.py)
DEBS    := liburing-dev iproute2 g++ python3-venv socat ethtool iperf frr systemd util-linux clang-14 nftables \
           libclang-rt-14-dev
UNITS   := build/units
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -g
FUZZ    := build/fuzz
# Inputs per fuzz target, and the seconds each may take at most (the atheris targets need
# about 90 s for 10^6 inputs; run.py runs one target per core at a time).
FUZZ_RUNS := 1000000
FUZZ_TIME := 150
# The relay integration tests against an ASan/UBSan build of the extension, in a
# venv of its own (the editable install in .venv keeps the plain build).
ASAN    := build/asan
ASAN_PY := $(ASAN)/venv/bin/python
ASAN_REPORTS := $(CURDIR)/$(ASAN)/reports
# Less the one test that asserts a rate (1,000 rule changes a second), which
# an ASan -O1 build does not reach (30,000 changes took 41.5 s on a loaded machine).
ASAN_TESTS ?= tests/test_relay_*.py \
	--deselect tests/test_relay_churn.py::test_a_thousand_changes_a_second_lose_no_packet_of_stable_flows

.PHONY: demo test bench unit-tests fuzz fuzz-build fuzz-seeds sanitized-relay-tests install debs clean

demo: install
	$(VENV)/bin/mcr demo

test: install unit-tests fuzz sanitized-relay-tests
	$(PY) -m pytest -q

# MCR against socat and kernel forwarding (benchmarks/run.py): `make bench QUICK=1`
# for the under-5-minute profile. Reports go to benchmarks/results/<time>/.
bench: install
	$(PY) -m benchmarks.run $(if $(QUICK),--quick)

# Engine units (parser, rule table, wire format, fuzz) without Python, under ASan/UBSan.
unit-tests: install
	$(VENV)/bin/cmake -S . -B $(UNITS) -G Ninja -DMCR_UNIT_TESTS=ON -DCMAKE_BUILD_TYPE=Debug \
		-DCMAKE_CXX_FLAGS="$(SANITIZE)" -DCMAKE_MAKE_PROGRAM=$(CURDIR)/$(VENV)/bin/ninja >/dev/null
	$(VENV)/bin/cmake --build $(UNITS)
	$(VENV)/bin/ctest --test-dir $(UNITS) --output-on-failure

# libFuzzer targets (tests/fuzz/README.md): the C++ decoders built with clang under
# ASan/UBSan, the Python ones through atheris; each runs FUZZ_RUNS inputs.
fuzz: fuzz-build
	$(PY) tests/fuzz/run.py --build $(FUZZ) --runs $(FUZZ_RUNS) --max-time $(FUZZ_TIME)

fuzz-build: install
	$(VENV)/bin/cmake -S . -B $(FUZZ) -G Ninja -DMCR_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-14 \
		-DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -g -O1" \
		-DCMAKE_MAKE_PROGRAM=$(CURDIR)/$(VENV)/bin/ninja >/dev/null
	$(VENV)/bin/cmake --build $(FUZZ)

# Rewrites the committed seed corpora (tests/fuzz/corpus) from the encoders.
fuzz-seeds: fuzz-build
	$(FUZZ)/tests/fuzz/fuzz_seeds tests/fuzz/corpus
	$(PY) tests/fuzz/python_seeds.py tests/fuzz/corpus

# Python is not built with ASan, so its runtime is preloaded (engines run in the
# test process, and relays and workers inherit it); reports go to files, checked
# after the run, since a worker that aborts is restarted and its test may pass. Leak detection is off: CPython's own allocations
# would drown any real report.
sanitized-relay-tests: debs
	test -x $(ASAN_PY) || python3 -m venv $(ASAN)/venv
	$(ASAN_PY) -m pip install -q --disable-pip-version-check pytest
	$(ASAN_PY) -m pip install -q --disable-pip-version-check . -C cmake.build-type=Debug -C build-dir=$(ASAN)/cmake \
		-C "cmake.define.CMAKE_CXX_FLAGS=$(SANITIZE) -fno-omit-frame-pointer -O1"
	rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS)
	status=0; LD_PRELOAD=$$(g++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0:log_path=$(ASAN_REPORTS)/asan \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(ASAN_REPORTS)/ubsan \
		$(ASAN_PY) -m pytest -q -p no:cacheprovider $(ASAN_TESTS) || status=$$?; \
	if [ -n "$$(ls $(ASAN_REPORTS))" ]; then cat $(ASAN_REPORTS)/*; echo "sanitizer reports above"; exit 1; fi; \
	exit $$status

install: debs $(VENV)/bin/python
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'

$(VENV)/bin/python:
	python3 -m venv $(VENV)

# Installs only what is missing, so a second run does not touch apt.
debs:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

clean:
	rm -rf build $(VENV)
