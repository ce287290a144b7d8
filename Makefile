# One command for the demo, one for the tests; both set up what they need first.
#   make demo   — venv, install, Mosquitto (started privately if none listens), run the demo
#                 (CONFIG=configs/traffic.yaml and the like for a scene preset)
#   make test   — venv, install, Mosquitto, lint (ruff, mypy, import layers), the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
MQTT_HOST ?= 127.0.0.1
MQTT_PORT ?= 1883
# the demo's config: configs/demo.yaml, or a scene preset's (surveillance, traffic, retail_shelf)
CONFIG ?= configs/demo.yaml

.ONESHELL:
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.PHONY: setup system-deps demo test lint clean

# Debian/Ubuntu packages: a Python that can make venvs, Mosquitto (broker and clients), NATS
# and Redis (the tests' JetStream and Redis servers), GStreamer's RTSP server with the system
# Python's bindings (the tests' RTSP camera), and Chromium with its driver (the tests' browser
# for the web console).
GST_PACKAGES := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
system-deps:
	@missing=()
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv python3-pip)
	command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
	command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
	command -v openssl >/dev/null || missing+=(openssl)
	command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || [ -x /usr/bin/nats-server ] || missing+=(nats-server)
	command -v redis-server >/dev/null || missing+=(redis-server)
	/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer' 2>/dev/null \
	  && gst-inspect-1.0 rtph264pay >/dev/null 2>&1 && gst-inspect-1.0 h264parse >/dev/null 2>&1 \
	  || missing+=($(GST_PACKAGES) gstreamer1.0-tools)
	if [ $${#missing[@]} -gt 0 ]; then
	  echo "installing Debian packages: $${missing[*]}"
	  $(SUDO) apt-get update -qq
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends "$${missing[@]}"
	fi
	# Ubuntu ships Chromium as a snap only: there the console's browser tests skip, saying so
	if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
	  echo "installing Debian packages: chromium chromium-driver"
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	      --no-install-recommends chromium chromium-driver; } \
	    || echo "chromium could not be installed; the web console's browser tests will skip"
	fi

$(BIN)/edged: pyproject.toml | system-deps
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup: system-deps $(BIN)/edged

demo: setup
	@export PATH="$$PATH:/usr/sbin"
	host=$${EDGED_MQTT_HOST:-$(MQTT_HOST)}; port=$${EDGED_MQTT_PORT:-$(MQTT_PORT)}
	work=$$(mktemp -d); pids=()
	trap 'kill $${pids[@]+"$${pids[@]}"} 2>/dev/null || true; rm -rf "$$work"' EXIT
	if ! (exec 3<>/dev/tcp/$$host/$$port) 2>/dev/null; then
	  echo "no MQTT broker at $$host:$$port; starting a private Mosquitto for the demo"
	  host=127.0.0.1; port=$$($(BIN)/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' $$port > "$$work/mosquitto.conf"
	  mosquitto -c "$$work/mosquitto.conf" 2>"$$work/mosquitto.log" & pids+=($$!)
	  for _ in $$(seq 50); do (exec 3<>/dev/tcp/$$host/$$port) 2>/dev/null && break; sleep 0.1; done
	fi
	device=$$($(BIN)/python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["device_id"])' $(CONFIG))
	mosquitto_sub -h $$host -p $$port -t "edged/$$device/#" -v > "$$work/received" & pids+=($$!)
	echo "broker $$host:$$port; events print below as JSON lines (Ctrl-C stops)"
	EDGED_MQTT_HOST=$$host EDGED_MQTT_PORT=$$port EDGED_STATE_DIR="$$work/state" \
	  $(BIN)/edged run $(CONFIG) --print-events
	sleep 0.5  # let the subscriber print the last messages before it is stopped
	$(BIN)/python -c 'import collections, json, sys
	kinds = collections.Counter(json.loads(p)["kind"] for _, _, p in (l.partition(" ") for l in open(sys.argv[1])) if p.startswith("{"))
	print(f"the broker delivered on edged/{sys.argv[2]}/#: " + ", ".join(f"{n} {k}" for k, n in kinds.most_common()))' "$$work/received" "$$device"

# ruff; mypy (pydantic plugin) on edged/; the floors of the package as import-linter's layers
# contract (pyproject.toml): an import that points up fails here
lint: setup
	$(BIN)/ruff check edged tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
