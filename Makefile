# rkube: `make run` starts a cluster, `make test` proves it. Both install what they need
# on a fresh Debian machine (see scripts/deps.sh).

CARGO ?= cargo
DATA_DIR ?= $(HOME)/.rkube
KUBECONFIG_OUT ?= $(DATA_DIR)/rkube.yaml
PORT ?= 6443

.PHONY: all build deps images registry run test lint bench conformance clean

all: build

deps:
	@scripts/deps.sh

# The offline images (pause, busybox, testserver) as OCI archives in target/images/ (scripts/images.sh;
# quick when up to date). The agent imports every archive of <data-dir>/agent/images/.
images: deps
	@scripts/images.sh

# The registry the tests pull from: Debian's docker-registry on 127.0.0.1:5050 (storage in
# target/registry; one another checkout started is used as is), holding the images above.
registry: images
	@scripts/registry.sh ensure
	@scripts/images.sh --push 127.0.0.1:5050

build: deps
	$(CARGO) build --release -p rkube
	@echo "built target/release/rkube"

run: build images
	@mkdir -p $(DATA_DIR)/agent/images && cp target/images/*.tar $(DATA_DIR)/agent/images/
	@echo "starting rkube server (data: $(DATA_DIR), kubeconfig: $(KUBECONFIG_OUT))"
	@echo "in another shell: export KUBECONFIG=$(KUBECONFIG_OUT); kubectl get nodes,ns"
	./target/release/rkube server --data-dir $(DATA_DIR) --https-listen-port $(PORT) \
		--write-kubeconfig $(KUBECONFIG_OUT)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: deps images registry lint
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace -- --test-threads=2

# cargo bench builds the server in release mode and runs the benchmarks of rkube/benches:
# api (API server on SQLite; RKUBE_BENCH_UPDATES scales its compaction phase), etcd (pod
# creates on etcd vs raw etcd puts), scale (100 hollow nodes, 10,000 pods), startup (pod
# create → Running through a real `rkube agent` vs raw CRI on its containerd, 1 and 30 pods;
# needs root and `make images`) and proxy (TCP throughput, latency and connections/s through
# a separate `rkube proxy` vs direct vs Debian's haproxy, and its memory with 1,000
# Services; needs root). Each writes bench/results/<name>.json and <name>.md;
# `make bench BENCHES="--bench etcd"` runs one.
BENCHES ?= --bench api --bench etcd --bench scale --bench startup --bench proxy
bench: deps images
	$(CARGO) bench -p rkube $(BENCHES) -- --output $(CURDIR)/bench/results

# rkube's port of upstream's conformance tests against the cluster of $KUBECONFIG (any
# cluster); CONFORMANCE_ARGS passes --focus/--skip/--parallel. JUnit in conformance/results/.
conformance:
	$(CARGO) run -q -p rkube-conformance -- --junit conformance/results/junit.xml $(CONFORMANCE_ARGS)

clean:
	$(CARGO) clean
