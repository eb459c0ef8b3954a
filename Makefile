# The README's two commands: `make demo` and `make test`. Both install what
# they need first: Debian packages (as root), then MCR into ./.venv.
# Network namespaces need root: run as root or with sudo.

VENV    := .venv
PY      := $(VENV)/bin/python
# socat: the relay the benchmark (and its smoke test and notebook) compares MCR with;
# socat and iperf (iperf2): senders and receivers we did not write, in
# tests/test_relay_applications.py; frr: FRRouting's pimd, the IGMP querier
# MCR's querier is tested against (tests/test_igmp_interop.py); systemd: systemd-analyze
# verifies the service units (tests/test_service_units.py, which also needs setpriv from util-linux)
DEBS    := liburing-dev iproute2 g++ python3-venv socat ethtool iperf frr systemd util-linux
UNITS   := build/units
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -g

.PHONY: demo test bench unit-tests install debs clean

demo: install
	$(VENV)/bin/mcr demo

test: install unit-tests
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
