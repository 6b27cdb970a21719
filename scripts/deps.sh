#!/usr/bin/env bash
# Installs what building, testing and the demo need on Debian 12, and only
# what is missing: MariaDB server, mysql-test-run, plugin headers,
# mariadb-backup, a C compiler, the Go modules and staticcheck. Safe to
# run again; fast when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(mariadb-server mariadb-test mariadb-backup libmariadbd-dev libmariadb-dev
              gcc make cmake perl procps curl
              dpkg-dev lintian  # make deb (dpkg-shlibdeps) and the deb level's lintian
              galera-4 socat)  # the galera level: the provider, and SST by mariabackup streams over socat
STATICCHECK_VERSION=v0.8.2  # pinned so every machine runs the same checks
GO_MIN=1.25

say() { printf 'deps: %s\n' "$*"; }

# The loopback KMS tests check the emulator with an independent client,
# the AWS CLI: any `aws` on PATH will do, else Debian's awscli.
command -v aws >/dev/null || APT_PACKAGES+=(awscli)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { say "need root (or sudo) to install: ${missing[*]}"; exit 1; }
    SUDO=sudo
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # No service starts here (policy-rc.d); nothing touches a running server.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null; then
  for d in /usr/local/go/bin /usr/lib/go/bin; do [ -x "$d/go" ] && export PATH="$d:$PATH"; done
fi
command -v go >/dev/null || { say "Go $GO_MIN or newer is required (https://go.dev/doc/install); not found on PATH"; exit 1; }
have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$GO_MIN" "$have" | sort -V | head -1)" != "$GO_MIN" ]; then
  say "Go $have is too old: $GO_MIN or newer is required"; exit 1
fi

say "Go modules"
go mod download

mkdir -p build/tools
if [ ! -x build/tools/staticcheck ] || ! build/tools/staticcheck -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
  say "staticcheck $STATICCHECK_VERSION"
  GOBIN="$PWD/build/tools" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
say "ready"
