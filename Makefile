# aws_key_management (Go). Targets a newcomer guesses:
#   make        build/aws_key_management.so       (release: AWS KMS only)
#               build/mariadb-aws-keys            (the operator tool: list, verify, rewrap)
#               build/iam-kms-wrapper             (starts mariadbd with MFA session credentials)
#   make mock   build/mock/aws_key_management.so  (adds aws_key_management_mock)
#   make deb    build/aws-key-management_<version>_amd64.deb
#   make test   unit, ABI and mtr tests; installs what it needs
#   make demo   a private MariaDB on loopback with the plugin
#   make bench  benchmarks
#   make clean
SHELL := /bin/bash
GO ?= go
BUILD := build
# The version and commit a build carries (PLUGIN_DESCRIPTION, the error
# log, mariadb-aws-keys --version): the VERSION file and git.
VERSION := $(shell cat VERSION)
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo -dirty)
BUILDINFO := github.com/mariadb-go/aws_key_management/internal/buildinfo
LDFLAGS := -s -w -X $(BUILDINFO).Version=$(VERSION) -X $(BUILDINFO).Commit=$(COMMIT)
GOFLAGS_BUILD := -buildmode=c-shared -trimpath -ldflags='$(LDFLAGS)'
GO_SOURCES := $(shell find cabi plugin internal -name '*.go' -o -name '*.c' -o -name '*.h' 2>/dev/null) go.mod go.sum $(BUILD)/buildinfo.stamp
TOOL_SOURCES := $(shell find cmd/mariadb-aws-keys internal -name '*.go' 2>/dev/null) go.mod go.sum $(BUILD)/buildinfo.stamp
WRAPPER_SOURCES := $(shell find cmd/iam-kms-wrapper internal/mfawrapper internal/optfile -name '*.go' 2>/dev/null) go.mod go.sum $(BUILD)/buildinfo.stamp

.PHONY: all release mock tool wrapper mfa deb suite repl galera deps test lint unit abi keycache mtr tools creds install-test deb-test demo bench clean FORCE

all: release tool wrapper

# Rewritten only when the version or commit changes, so that a new commit
# rebuilds the binaries that carry it.
$(BUILD)/buildinfo.stamp: FORCE
	@mkdir -p $(@D)
	@echo '$(VERSION) $(COMMIT)' | cmp -s - $@ || echo '$(VERSION) $(COMMIT)' >$@
FORCE:
release: $(BUILD)/aws_key_management.so
mock: $(BUILD)/mock/aws_key_management.so
tool: $(BUILD)/mariadb-aws-keys
wrapper: $(BUILD)/iam-kms-wrapper

# The operator tool: plain Go, statically linked (no cgo).
$(BUILD)/mariadb-aws-keys: $(TOOL_SOURCES)
	@mkdir -p $(@D)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='$(LDFLAGS)' -o $@ ./cmd/mariadb-aws-keys

# The MFA start wrapper (iam-kms-wrapper): plain Go, statically linked.
$(BUILD)/iam-kms-wrapper: $(WRAPPER_SOURCES)
	@mkdir -p $(@D)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='$(LDFLAGS)' -o $@ ./cmd/iam-kms-wrapper

$(BUILD)/aws_key_management.so: $(GO_SOURCES)
	@mkdir -p $(@D)
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./plugin
	@rm -f $(@D)/aws_key_management.h

$(BUILD)/mock/aws_key_management.so: $(GO_SOURCES)
	@mkdir -p $(@D)
	$(GO) build -tags mock $(GOFLAGS_BUILD) -o $@ ./plugin
	@rm -f $(@D)/aws_key_management.h

$(BUILD)/abi-host: tests/abi/host.c tests/include/akm_host.h tests/include/akm_check.h
	@mkdir -p $(@D)
	gcc -Wall -Wextra -Wno-unused-parameter -O1 -Itests/include -I/usr/include/mariadb/server -DMYSQL_DYNAMIC_PLUGIN -o $@ $< -ldl -lpthread

# The C key table by itself under ThreadSanitizer (scripts/test.sh keycache).
# -Wno-tsan: TSan does not model the seqlock's atomic_thread_fence; every
# shared access is atomic, so no false report can follow, and the test
# itself detects torn keys.
$(BUILD)/keycache-test: tests/keycache/test.c tests/include/akm_check.h cabi/akm_keycache.c cabi/akm_keycache.h cabi/cabi.h
	@mkdir -p $(@D)
	gcc -Wall -Wextra -Wno-tsan -O1 -g -fsanitize=thread -DAKM_KEYCACHE_TEST -Icabi -Itests/include -o $@ tests/keycache/test.c cabi/akm_keycache.c -lpthread

deps:
	@scripts/deps.sh

# Every level runs even if an earlier one fails; scripts/test.sh prints
# "N passed, N failed" over all of them and exits non-zero on any failure.
test: deps
	@scripts/test.sh

lint:
	@scripts/test.sh lint
unit:
	@scripts/test.sh unit
abi: $(BUILD)/mock/aws_key_management.so $(BUILD)/abi-host
	@scripts/test.sh abi
keycache:
	@scripts/test.sh keycache
mtr: $(BUILD)/mock/aws_key_management.so
	@scripts/test.sh mtr
tools: $(BUILD)/aws_key_management.so $(BUILD)/mariadb-aws-keys
	@scripts/test.sh tools
creds: $(BUILD)/aws_key_management.so $(BUILD)/mariadb-aws-keys $(BUILD)/iam-kms-wrapper
	@scripts/test.sh creds
# (install-test: `make install` would suggest installing into the system.)
install-test:
	@scripts/test.sh install
deb-test:
	@scripts/test.sh deb

# build/aws-key-management_<version>_amd64.deb (scripts/deb.sh, dpkg-deb).
deb:
	@scripts/deb.sh
mfa: $(BUILD)/aws_key_management.so $(BUILD)/mariadb-aws-keys $(BUILD)/iam-kms-wrapper
	@scripts/test.sh mfa
# MariaDB's own encryption mtr suite with the mock build (tests/suite/run.sh).
suite: $(BUILD)/mock/aws_key_management.so
	@scripts/test.sh suite

repl: $(BUILD)/aws_key_management.so $(BUILD)/mariadb-aws-keys
	@scripts/test.sh repl
galera: $(BUILD)/aws_key_management.so $(BUILD)/mariadb-aws-keys
	@scripts/test.sh galera

demo: deps release
	@scripts/demo.sh

# The C harness of make bench (bench/run.sh builds it through this rule).
$(BUILD)/bench/bench: bench/bench.c tests/include/akm_host.h
	@mkdir -p $(@D)
	gcc -Wall -Wextra -O2 -Itests/include -I/usr/include/mariadb/server -DMYSQL_DYNAMIC_PLUGIN -o $@ $< -ldl -lpthread

bench: deps
	@bench/run.sh

clean:
	rm -rf $(BUILD)
