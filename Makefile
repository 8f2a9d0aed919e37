# IndexPilot — the one entry point. `make` alone lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := bin
MODULES   := events pkg services/collector services/scorer services/gatekeeper services/executor services/adapters services/indexpilot integration
STAGES    := collector scorer gatekeeper executor indexpilot
TESTFLAGS ?= -count=1 -timeout 20m

.PHONY: help
help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: setup
setup: ## install HypoPG/pg_qualstats and preload pg_stat_statements on the local cluster (root; idempotent; restarts it once), and Debian's chromium for the dashboard's browser test
	@bash infra/scripts/setup-postgres.sh
	@bash infra/scripts/setup-chromium.sh

.PHONY: build
build: ## build every binary into bin/
	@mkdir -p $(BIN)
	@for s in $(STAGES); do \
	  echo "build $(BIN)/$$s"; \
	  (cd services/$$s && $(GO) build -o ../../$(BIN)/$$s ./cmd/$$s) || exit 1; \
	done

.PHONY: test
test: setup ## run every test: unit, database, stage and integration (needs the local PostgreSQL; runs `setup` first)
	$(GO) test $(TESTFLAGS) $(addsuffix /...,$(addprefix ./,$(MODULES)))

# The version matrix (docs/compatibility.md). Per server: the suites that
# send version-specific SQL, whole, and the stage tests of the collector
# (logical replication of application statistics) and of the executor
# (builds, progress, INVALID leftovers, partitions, validation, removals)
# that exercise it; then, once, the TestVersionMatrix* tests, which loop over
# every version themselves; last, the eviction test (EVICTION_TESTS), which
# overflows pg_stat_statements and so evicts entries server-wide: it runs
# only here, on servers no other test uses (`pg-versions.sh evict`: a small
# cluster per version, 14 to 18, with pg_stat_statements.max = 100), and is
# skipped by every other step.
VERSION_PKGS  := ./pkg/metadata ./pkg/indexdef ./pkg/removal ./pkg/bypass ./services/collector/internal/pgstat ./services/collector/appstats ./services/executor/internal/build
VERSION_STAGE := ./services/collector ./services/executor
VERSION_STAGE_TESTS := TestStreamsAppStats|TestStreamRestart|TestRemovingATargetDropsItsSlot|TestPollFallbackWithWatermark|TestStopMidBuild|TestKilledExecutorLeftover|TestBuildOnPartitionedTableThroughTheStage|TestWorkloadShiftedAway|TestIndexThatHelpsIsKept|TestApprovedRemovalDropsConcurrently|TestRemovalReCheckedBeforeTheDrop|TestLongTransactionBuildGivesUp|TestPGCPUMeasures
MATRIX_PKGS   := ./pkg/pgtest ./services/collector/internal/pgstat ./services/scorer/internal/whatif ./services/scorer
EVICTION_TESTS := TestEviction
EVICTION_PKGS  := ./services/collector/internal/pgstat

.PHONY: test-versions
test-versions: ## run the version-specific tests on PostgreSQL 14, 16, 17 and 18, and pg_stat_statements eviction on 14 to 18 (starts throwaway clusters via infra/scripts/pg-versions.sh; needs npm the first time)
	@set -e; eval "$$(bash infra/scripts/pg-versions.sh)"; \
	for v in 14 16 17 18; do \
	  u="$$(printenv INDEXPILOT_TEST_PG$${v}_URL)"; \
	  echo "== PostgreSQL $$v: version-specific suites"; \
	  TEST_DATABASE_URL="$$u" $(GO) test $(TESTFLAGS) -skip 'VersionMatrix|$(EVICTION_TESTS)' $(VERSION_PKGS); \
	  TEST_DATABASE_URL="$$u" $(GO) test $(TESTFLAGS) -run '$(VERSION_STAGE_TESTS)' $(VERSION_STAGE); \
	done; \
	echo "== version matrix (14 to 18)"; \
	INDEXPILOT_TEST_PG_MATRIX=1 $(GO) test $(TESTFLAGS) -run VersionMatrix $(MATRIX_PKGS); \
	echo "== pg_stat_statements eviction (14 to 18, a server of its own per version)"; \
	eval "$$(bash infra/scripts/pg-versions.sh evict)"; \
	INDEXPILOT_TEST_PG_EVICT=1 $(GO) test $(TESTFLAGS) -run '$(EVICTION_TESTS)' $(EVICTION_PKGS)

.PHONY: test-unit
test-unit: ## run the tests that need no database
	$(GO) test $(TESTFLAGS) -short $(addsuffix /...,$(addprefix ./,$(MODULES)))

.PHONY: test-integration
test-integration: setup ## run the cross-stage tests (all stages over kfake against the real PostgreSQL)
	$(GO) test $(TESTFLAGS) -v ./integration/...

.PHONY: verify
verify: ## build each module on its own (GOWORK=off) and vet the workspace
	@for m in $(MODULES); do \
	  echo "verify $$m"; \
	  (cd $$m && GOWORK=off $(GO) build ./... ) || exit 1; \
	done
	$(GO) vet $(addsuffix /...,$(addprefix ./,$(MODULES)))

FUZZTIME ?= 20000x

.PHONY: fuzz
fuzz: ## fuzz the event decoder, the statement extractor and the candidates, $(FUZZTIME) inputs each (FUZZTIME=1000000x for the counted run in docs/reliability.md; not part of `make test`)
	cd events && $(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) -parallel 1 .
	cd events && $(GO) test -run '^$$' -fuzz '^FuzzDecodePayload$$' -fuzztime $(FUZZTIME) -parallel 1 .
	cd services/scorer && $(GO) test -run '^$$' -fuzz '^FuzzExtract$$' -fuzztime $(FUZZTIME) -parallel 1 ./internal/sqlparse/
	cd services/scorer && $(GO) test -run '^$$' -fuzz '^FuzzCandidates$$' -fuzztime $(FUZZTIME) -parallel 1 ./internal/candidates/

.PHONY: under-load
under-load: ## run TestRunAllOnTheMemoryBus in batches of 20 under -cpu 1 while make test runs, and count (UNDER_LOAD_MOD, UNDER_LOAD_TEST; docs/reliability.md)
	bash infra/scripts/under-load.sh $(or $(UNDER_LOAD_MOD),services/indexpilot) '$(or $(UNDER_LOAD_TEST),^TestRunAllOnTheMemoryBus$$)' 1

.PHONY: chaos
chaos: ## run the pipeline under seeded random faults and check its promises (CHAOS_SEED, CHAOS_RUNS, CHAOS_SHAPE, CHAOS_PROCS, CHAOS_FAULTS; see docs/reliability.md; not part of `make test`)
	cd services/indexpilot && $(GO) run ./cmd/indexpilot-chaos

.PHONY: demo
demo: ## find and build missing indexes on a throwaway demo database, with before/after timings
	@bash infra/scripts/setup-postgres.sh --packages-only
	@mkdir -p $(BIN)
	@cd services/indexpilot && $(GO) build -o ../../$(BIN)/indexpilot ./cmd/indexpilot
	@$(BIN)/indexpilot demo

.PHONY: run
run: build ## run the all-in-one process against INDEXPILOT_DATABASE_URL
	$(BIN)/indexpilot run

.PHONY: tidy
tidy: ## go mod tidy in every module
	@for m in $(MODULES); do (cd $$m && $(GO) mod tidy) || exit 1; done
