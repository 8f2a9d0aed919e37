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
setup: ## install HypoPG/pg_qualstats and preload pg_stat_statements on the local cluster (root; idempotent; restarts it once)
	@bash infra/scripts/setup-postgres.sh

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

.PHONY: fuzz
fuzz: ## fuzz the statement extractor for 60 s
	cd services/scorer && $(GO) test -run '^$$' -fuzz FuzzExtract -fuzztime 60s ./internal/sqlparse/

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
