# aws_key_management (Go). Targets a newcomer guesses:
#   make        build/aws_key_management.so       (release: AWS KMS only)
#               build/mariadb-aws-keys            (the operator tool: list, verify, rewrap)
#   make mock   build/mock/aws_key_management.so  (adds aws_key_management_mock)
#   make test   unit, ABI and mtr tests; installs what it needs
#   make demo   a private MariaDB on loopback with the plugin
#   make bench  benchmarks
#   make clean
SHELL := /bin/bash
GO ?= go
BUILD := build
GOFLAGS_BUILD := -buildmode=c-shared -trimpath -ldflags='-s -w'
GO_SOURCES := $(shell find cabi plugin internal -name '*.go' -o -name '*.c' -o -name '*.h' 2>/dev/null) go.mod go.sum
TOOL_SOURCES := $(shell find cmd/mariadb-aws-keys internal -name '*.go' 2>/dev/null) go.mod go.sum

.PHONY: all release mock tool deps test lint unit abi keycache mtr tools repl galera demo bench clean

all: release tool
release: $(BUILD)/aws_key_management.so
mock: $(BUILD)/mock/aws_key_management.so
tool: $(BUILD)/mariadb-aws-keys

# The operator tool: plain Go, statically linked (no cgo).
$(BUILD)/mariadb-aws-keys: $(TOOL_SOURCES)
	@mkdir -p $(@D)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $@ ./cmd/mariadb-aws-keys

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
