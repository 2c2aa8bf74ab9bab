# Démarche — one Makefile for the whole workspace (go.work).
# Quick start:  make run   (the platform on this machine)
#               make test  (every test: unit, replay, integration on the real stack)

SHELL   := /bin/bash
GO      ?= go
MODULES := ./proto/... ./pkg/... ./workflows/... ./services/... ./devstack/...
BIN     := bin/demarche
# Tools are pinned and built from the Go module proxy; nothing else is downloaded.
BUF     := GOWORK=off $(GO) run github.com/bufbuild/buf/cmd/buf@v1.75.0
# promtool of Prometheus 3.x (the Go module's v0.3xx versions are Prometheus 3's):
# checks and unit-tests the alert rules in deploy/prometheus.
PROMTOOL ?= GOWORK=off $(GO) run github.com/prometheus/prometheus/cmd/promtool@v0.316.0
# staticcheck's default checks (bugs, simplifications, unused code, style of errors).
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# deadcode: functions no program and no test reaches (staticcheck's unused
# check does not see exported ones).
DEADCODE := $(GO) run golang.org/x/tools/cmd/deadcode@v0.51.0
CYCLONEDX := GOWORK=off $(GO) run github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64
GOTEST_FLAGS ?= -timeout 20m
FUZZTIME     ?= 60s
# The contract linters: npm packages pinned by tools/contract-lint's
# package-lock.json, installed there (never globally) by npm ci.
CONTRACT_LINT := tools/contract-lint
NPM          ?= npm
NODE         ?= node

.PHONY: help build run test test-short chaos cluster-test fuzz lint contract-lint rules proto proto-check breaking breaking-baseline release release-test release-baseline release-check docs fmt vet staticcheck deadcode bench bench-cluster bench-go record-histories tag-histories clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

build: ## build the demarche binary into bin/
	$(GO) build -o $(BIN) ./devstack/cmd/demarche

run: build ## run the whole platform locally (embedded NATS + Temporal, data in ./.demarche)
	./$(BIN) dev

test: ## run every test (unit, replay, integration on the embedded stack)
	$(GO) test $(GOTEST_FLAGS) $(MODULES)

test-short: ## unit and replay tests only (skips the embedded stack)
	$(GO) test -short $(GOTEST_FLAGS) ./proto/... ./pkg/... ./workflows/... ./services/...

chaos: ## the full fault suite (kill -9, NATS restart, outage, duplicates, poison) and its figures, then the full-size restore drill; DEMARCHE_CHAOS_SEED=N repeats a plan
	DEMARCHE_CHAOS_SIZE=$${DEMARCHE_CHAOS_SIZE:-full} $(GO) test -count=1 -timeout 60m -run '^TestChaos$$' -v ./devstack/chaos/
	DEMARCHE_CHAOS_SIZE=$${DEMARCHE_CHAOS_SIZE:-full} $(GO) test -count=1 -timeout 30m -run '^TestRestoreDrill$$' -v ./devstack/restore/

cluster-test: ## the multi-process cluster test: PostgreSQL + Temporal on it + 3 NATS nodes (replicas 3) + every service as its own process; kills a NATS node, the worker and Temporal; a tiny demarche bench against it; prints its figures
	DEMARCHE_CLUSTER_TEST=1 $(GO) test -count=1 -timeout 30m -run '^TestCluster$$' -v ./devstack/chaos/

fuzz: ## run every fuzz target for FUZZTIME each (default 60s); commit a crasher from testdata/fuzz with its fix
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' pkg workflows services devstack | sort); do \
	  d=./$$(dirname $$f); \
	  for n in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
	    echo "== $$n ($$d, $(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$n\$$" -fuzztime $(FUZZTIME) $$d; \
	  done; \
	done

BENCH_FLAGS ?=
bench: build ## demarche bench: every scenario on the embedded stack beside its bare baseline (table, bench-results/bench.json, bench.svg)
	./$(BIN) bench --out bench-results $(BENCH_FLAGS)

bench-cluster: ## demarche bench against the cluster of make cluster-test (PostgreSQL, Temporal on it, 3 NATS nodes, replicas 3, every service its own process): the same table, bench-results/cluster/bench.json, bench.svg, bench.md; BENCH_FLAGS as for make bench; NATS_SYNC=default measures without sync_interval: always
	DEMARCHE_CLUSTER_NATS_SYNC=$(NATS_SYNC) DEMARCHE_BENCH_CLUSTER=1 DEMARCHE_BENCH_OUT=$(CURDIR)/bench-results/cluster DEMARCHE_BENCH_FLAGS="$(BENCH_FLAGS)" $(GO) test -count=1 -timeout 120m -run '^TestBenchCluster$$' -v ./devstack/chaos/

bench-go: ## Go micro-benchmarks (encode, publish, ingest path, replay) with their same-run baselines
	$(GO) test -run '^$$' -bench . -benchmem $(MODULES)

lint: proto-check vet staticcheck deadcode breaking rules contract-lint ## buf lint, buf breaking, generated code and docs up to date, gofmt, go vet, staticcheck, no dead exports, deploy/ matches the cluster topology, alert rules checked and tested, contracts lint-clean
	cd proto && $(BUF) lint
	$(GO) test -count=1 -run 'TestCompose|TestDeploy' ./devstack/cluster/ ./pkg/natsauth/
	$(GO) test -count=1 ./devstack/repocheck/   # no compiled program in git, no file over 1 MiB outside testdata, every doc link and anchor resolves, README ≤ 150 lines, no httptest in production code, no ignored error without a comment saying why
	@out=$$(gofmt -l proto pkg workflows services devstack examples); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

contract-lint: ## spectral (spectral:oas + spectral:asyncapi, all rules) on docs/openapi.json and docs/asyncapi.json, and the official AsyncAPI parser's validation of docs/asyncapi.json: 0 errors AND 0 warnings (needs node and npm)
	@command -v $(NODE) >/dev/null && command -v $(NPM) >/dev/null || { echo "contract-lint needs node (>= 18.18) and npm: apt-get install nodejs npm"; exit 1; }
	@# npm ci again only when the lockfile changed since the last install.
	@if [ ! -f $(CONTRACT_LINT)/node_modules/.package-lock.json ] || [ $(CONTRACT_LINT)/package-lock.json -nt $(CONTRACT_LINT)/node_modules/.package-lock.json ]; then \
	  echo "npm ci --prefix $(CONTRACT_LINT)"; $(NPM) ci --prefix $(CONTRACT_LINT) --ignore-scripts --no-audit --no-fund; fi
	$(CONTRACT_LINT)/node_modules/.bin/spectral lint --ruleset $(CONTRACT_LINT)/.spectral.yaml --fail-severity warn docs/openapi.json docs/asyncapi.json
	$(NODE) $(CONTRACT_LINT)/asyncapi-validate.js docs/asyncapi.json

rules: ## promtool check + test the alert rules (deploy/prometheus: one test file per alert) and the scrape config; every metric the rules and the Grafana dashboard read is registered
	$(PROMTOOL) check rules deploy/prometheus/rules.yaml
	$(PROMTOOL) check config deploy/prometheus/prometheus.yaml
	cd deploy/prometheus/tests && $(PROMTOOL) test rules *.yaml
	$(GO) test -count=1 -run 'TestRulesNameRegisteredMetrics|TestDashboardNamesRegisteredMetrics' ./pkg/metrics/

vet:
	$(GO) vet $(MODULES)
	cd examples/subscriber && GOWORK=off $(GO) vet ./...   # its own module, outside go.work

staticcheck: ## staticcheck (pinned) on every module of the workspace: no finding allowed
	$(STATICCHECK) $(MODULES)

deadcode: ## deadcode (pinned): no function in pkg/ or services/ that neither the programs nor the tests reach
	@out=$$($(DEADCODE) -test -filter 'github.com/demarche/demarche/(pkg|services)/' $(MODULES)) || exit 1; \
	  if [ -n "$$out" ]; then echo "dead code (remove it, or use it):"; echo "$$out"; exit 1; fi

proto: ## regenerate Go code and the embedded descriptor set from proto/ (buf + protoc-gen-go, pinned)
	cd proto && $(BUF) generate && $(BUF) build --as-file-descriptor-set -o demarche/v1/descriptors.binpb

breaking: ## buf breaking against the last release's committed image (proto/releases/v*.binpb; proto/breaking-baseline.binpb before the first), plus a fixture that must be caught
	cd proto && ./breaking-check.sh env $(BUF)

breaking-baseline: ## before the first release only: accept today's schemas as the baseline buf breaking compares with
	@if ls proto/releases/v*.binpb >/dev/null 2>&1; then echo "a release image exists (proto/releases/): buf breaking compares with it, not with a baseline"; exit 1; fi
	cd proto && $(BUF) build -o breaking-baseline.binpb

release-baseline: ## keep today's schemas as release TAG's image, which buf breaking compares with from then on (make release-baseline TAG=v0.1.0)
	@test -n "$(TAG)" || { echo "usage: make release-baseline TAG=v0.1.0"; exit 1; }
	@[[ "$(TAG)" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$$ ]] || { echo "TAG=$(TAG): a release tag is vMAJOR.MINOR.PATCH"; exit 1; }
	@! test -e proto/releases/$(TAG).binpb || { echo "proto/releases/$(TAG).binpb exists: a release's image is never rewritten"; exit 1; }
	mkdir -p proto/releases
	cd proto && $(BUF) build -o releases/$(TAG).binpb

release-check: ## is everything kept for release TAG (histories, schema image, CHANGELOG entry)? (make release-check TAG=v0.1.0)
	@test -n "$(TAG)" || { echo "usage: make release-check TAG=v0.1.0"; exit 1; }
	@ok=1; \
	ls workflows/crisis/testdata/tags/$(TAG)/*.json >/dev/null 2>&1 || { echo "no histories for $(TAG): make tag-histories TAG=$(TAG)"; ok=0; }; \
	test -f proto/releases/$(TAG).binpb || { echo "no schema image for $(TAG): make release-baseline TAG=$(TAG)"; ok=0; }; \
	grep -q '^## \[$(patsubst v%,%,$(TAG))\] - [0-9]\{4\}-[0-9][0-9]-[0-9][0-9]$$' CHANGELOG.md || { echo "CHANGELOG.md has no '## [$(patsubst v%,%,$(TAG))] - YYYY-MM-DD' entry"; ok=0; }; \
	test -z "$$(git status --porcelain)" || { echo "uncommitted changes: a release is built from a clean, committed tree"; ok=0; }; \
	[ $$ok = 1 ] && echo "release $(TAG): histories, schema image and CHANGELOG entry are in place"

release: ## reproducible, stripped binaries for RELEASE_PLATFORMS into dist/ (deploy/release/build.sh), a CycloneDX SBOM of each, and SHA256SUMS
	rm -rf dist && mkdir -p dist
	@# One stamp for the whole release, read before anything is built.
	@set -e; eval "$$(deploy/release/build.sh --print)"; export VERSION COMMIT DATE; \
	echo "release $$VERSION (commit $$COMMIT of $$DATE)"; \
	start=$$(date +%s); for p in $(RELEASE_PLATFORMS); do \
	  t=$$(date +%s); deploy/release/build.sh dist $${p%/*} $${p#*/}; \
	  echo "built dist/demarche_$${p%/*}_$${p#*/} in $$(( $$(date +%s) - t ))s"; \
	done; echo "binaries built in $$(( $$(date +%s) - start ))s"; \
	for p in $(RELEASE_PLATFORMS); do b=dist/demarche_$${p%/*}_$${p#*/}; \
	  $(CYCLONEDX) bin -json -std -noserial -notimestamp -version "$$VERSION" -output $$b.cdx.json $$b; \
	done
	cd dist && sha256sum demarche_* > SHA256SUMS && cat SHA256SUMS && ls -l

release-test: ## prove the release reproducible: make release (linux/amd64) in one clone, build.sh in another, same sha256; checks SBOM, sums, version --json (slow: two builds)
	DEMARCHE_RELEASE_TEST=1 $(GO) test -count=1 -timeout 90m -run '^TestReleaseReproducible$$' -v ./devstack/release/

docs: ## regenerate docs/asyncapi.json and docs/events.md from the schemas and subjects in code
	$(GO) run ./services/contract/gendocs

proto-check: ## fail when the committed generated code is out of date
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	cd proto && $(BUF) generate --output $$tmp && \
	for f in $$(cd $$tmp && find . -name '*.pb.go'); do \
	  cmp -s $$tmp/$$f $$f || { echo "proto/$$f is out of date: run 'make proto'"; exit 1; }; \
	done; \
	for f in $$(find . -name '*.pb.go'); do \
	  [ -f $$tmp/$$f ] || { echo "proto/$$f has no schema: remove it or run 'make proto'"; exit 1; }; \
	done; \
	$(BUF) build --as-file-descriptor-set -o $$tmp/descriptors.binpb && \
	{ cmp -s $$tmp/descriptors.binpb demarche/v1/descriptors.binpb || { echo "proto/demarche/v1/descriptors.binpb is out of date: run 'make proto'"; exit 1; }; }; \
	echo "generated code is up to date"

fmt: ## gofmt every Go file
	gofmt -w proto pkg workflows services devstack examples

# Versioning rule: until the first release tag, a workflow change re-records the
# histories (record-histories); from the first tag on, the histories of each tag
# are kept (tag-histories) and replayed by make test, and a change that breaks one
# needs a versioning branch.
record-histories: ## re-record workflows/crisis/testdata (one history per workflow type) from a real run
	DEMARCHE_RECORD_HISTORIES=1 $(GO) test -count=1 -run 'TestPlatform|TestPeopleDrive|TestContinuedCrisisIsRecorded' ./devstack/stack/
	$(GO) test -count=1 -run Replay ./workflows/...

tag-histories: ## keep today's histories for release tag TAG (make tag-histories TAG=v0.1.0)
	@test -n "$(TAG)" || { echo "usage: make tag-histories TAG=v0.1.0"; exit 1; }
	mkdir -p workflows/crisis/testdata/tags/$(TAG)
	cp workflows/crisis/testdata/*.json workflows/crisis/testdata/tags/$(TAG)/
	$(GO) test -count=1 -run ReplayTagged ./workflows/crisis/

clean: ## remove build output (not the data folder)
	rm -rf bin dist
