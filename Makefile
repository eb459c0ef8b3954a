# The README's two commands: `make demo` and `make test`. Both install what
# they need first: Debian packages (as root), then MCR into ./.venv.
# Network namespaces need root: run as root or with sudo.

VENV    := .venv
PY      := $(VENV)/bin/python
# socat: the relay the benchmark (and its smoke test and notebook) compares MCR with;
# socat and iperf (iperf2): senders and receivers we did not write, in
# tests/test_relay_applications.py; frr: FRRouting's pimd, the IGMP querier
# MCR's querier is tested against (tests/test_igmp_interop.py); clang-14 and
# libclang-rt-14-dev (libFuzzer): the fuzz targets (tests/fuzz)
DEBS    := liburing-dev iproute2 g++ python3-venv socat ethtool iperf frr clang-14 libclang-rt-14-dev
UNITS   := build/units
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -g
FUZZ    := build/fuzz
# Inputs per fuzz target, and the seconds each may take at most.
FUZZ_RUNS := 1000000
FUZZ_TIME := 90

.PHONY: demo test bench unit-tests fuzz fuzz-build fuzz-seeds install debs clean

demo: install
	$(VENV)/bin/mcr demo

test: install unit-tests fuzz
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
