#!/usr/bin/env bash
# Builds build/aws-key-management_<version>_amd64.deb with dpkg-deb from
# `make`'s release library and tools (make deb). The package:
#   /usr/lib/mysql/plugin/aws_key_management.so      the release library
#   /usr/bin/mariadb-aws-keys                         the operator tool
#   /usr/bin/iam-kms-wrapper                          the MFA start wrapper
#   /etc/mysql/mariadb.conf.d/50-aws-key-management.cnf   a conffile, all commented out
#   /usr/share/doc/aws-key-management/               README, copyright (DEP-5, the Go
#       modules compiled into each binary, from `go version -m`), changelog,
#       examples: the systemd drop-ins (credentials; the start through
#       iam-kms-wrapper) and the wrapper's config
#   /usr/share/man/man1/mariadb-aws-keys.1.gz, iam-kms-wrapper.1.gz
# Depends on Debian's mariadb-server of the major version the library was
# built for (the plugin ABI is MariaDB's per major version).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$PATH:/usr/local/go/bin"

PKG=aws-key-management
VERSION=$(cat VERSION)
ARCH=$(dpkg --print-architecture)
OUT="build/${PKG}_${VERSION}_${ARCH}.deb"
STAGE=build/deb/root
DOC=$STAGE/usr/share/doc/$PKG
LIB=build/aws_key_management.so TOOL=build/mariadb-aws-keys WRAPPER=build/iam-kms-wrapper
# Every binary the package ships: the copyright lists the Go modules of each.
BINARIES=("$LIB" "$TOOL" "$WRAPPER")

die() { echo "deb.sh: $*" >&2; exit 1; }

make -s release tool wrapper >/dev/null || die "make failed"

# The MariaDB major version the library was compiled for (its headers).
MAJOR=$(sed -n 's/^#define MYSQL_BASE_VERSION[[:space:]]*"mysqld-\([0-9.]*\)"/\1/p' /usr/include/mariadb/server/mysql_version.h)
[ -n "$MAJOR" ] || die "cannot read MYSQL_BASE_VERSION from /usr/include/mariadb/server/mysql_version.h (install libmariadbd-dev)"
NEXT=${MAJOR%.*}.$((${MAJOR#*.} + 1))

rm -rf build/deb
install -d -m 0755 "$STAGE/DEBIAN" "$STAGE/usr/lib/mysql/plugin" "$STAGE/usr/bin" \
  "$STAGE/etc/mysql/mariadb.conf.d" "$DOC/examples" "$STAGE/usr/share/man/man1" \
  "$STAGE/usr/share/lintian/overrides"
install -m 0644 "$LIB" "$STAGE/usr/lib/mysql/plugin/"
install -m 0755 "$TOOL" "$WRAPPER" "$STAGE/usr/bin/"
install -m 0644 packaging/deb/50-aws-key-management.cnf "$STAGE/etc/mysql/mariadb.conf.d/"
# The credentials drop-in: support-files/systemd's when the checkout has
# one (the README's "Credentials, safely"), else the package's own.
DROPIN=support-files/systemd/aws-key-management-credentials.conf
[ -f "$DROPIN" ] || DROPIN=packaging/deb/examples/aws-key-management-credentials.conf
install -m 0644 "$DROPIN" "$DOC/examples/aws-key-management-credentials.conf"
# Starting mariadb.service through iam-kms-wrapper (the README's "Starting
# the server with an MFA code"): the drop-in and the wrapper's config.
install -m 0644 support-files/systemd/aws-key-management-mfa.conf support-files/systemd/iam-kms-wrapper.config "$DOC/examples/"
gzip -9n <README.md >"$DOC/README.md.gz"
for man in mariadb-aws-keys iam-kms-wrapper; do
  gzip -9n <"packaging/deb/$man.1" >"$STAGE/usr/share/man/man1/$man.1.gz"
done
install -m 0644 packaging/deb/lintian-overrides "$STAGE/usr/share/lintian/overrides/$PKG"

# changelog (a native package: changelog.gz), dated by the last commit so
# that the same checkout builds the same package.
DATE=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf '%s (%s) unstable; urgency=medium\n\n  * Build of commit %s.\n\n -- %s  %s\n' \
  "$PKG" "$VERSION" "$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
  "$(sed -n 's/^Maintainer: //p' packaging/deb/control.in)" "$DATE" | gzip -9n >"$DOC/changelog.gz"

# copyright: the project, then every Go module compiled into any of the
# BINARIES, with its licence as the module ships it and the binaries that
# have it.
MODCACHE=$(go env GOMODCACHE)
declare -A DEPS
for b in "${BINARIES[@]}"; do DEPS[$b]=$(go version -m "$b" | awk '$1 == "dep" { print $2 }'); done
{
  cat packaging/deb/copyright.in
  printf '\nFiles: go-stdlib/*\nCopyright: The Go Authors\nLicense: BSD-3-clause\n'
  sed 's/^[[:space:]]*$/./; s/^/ /' "$(go env GOROOT)/LICENSE"
  printf 'Comment: the Go %s standard library and runtime, compiled into every binary\n' "$(go env GOVERSION)"
  while read -r mod ver; do
    dir="$MODCACHE/$(sed 's/[A-Z]/!\L&/g' <<<"$mod")@$ver"
    lic=$(ls "$dir"/LICENSE* "$dir"/COPYING* 2>/dev/null | head -1) || true
    [ -n "$lic" ] || die "no LICENSE file in $dir (run: go mod download)"
    where=""
    for b in "${BINARIES[@]}"; do
      grep -qxF "$mod" <<<"${DEPS[$b]}" && where="${where:+$where, }$(basename "$b")"
    done
    holders=$( { cat "$lic" "$dir"/NOTICE* 2>/dev/null || true; } | sed -n 's/^[[:space:]]*Copyright *\(([cC]) *\)\{0,1\}\([0-9].*\)$/\2/p' | sort -u)
    case "$mod" in github.com/aws/*) holders=${holders:-Amazon.com, Inc. or its affiliates} ;; esac
    holders=${holders:-the authors of $mod}
    if grep -q 'Apache License' "$lic" && grep -q 'Version 2.0' "$lic"; then id=Apache-2.0 text=""
    elif grep -q 'Mozilla Public License Version 2.0' "$lic"; then id=MPL-2.0 text=""
    elif grep -q 'Permission is hereby granted, free of charge' "$lic"; then id=Expat text=$lic
    elif grep -q 'Neither the name' "$lic"; then id=BSD-3-clause text=$lic
    else die "$mod: licence in $lic not recognised: add it to scripts/deb.sh"; fi
    printf '\nFiles: go-modules/%s/*\nCopyright: %s\nLicense: %s\n' "$mod" "$(sed '2,$s/^/ /' <<<"$holders")" "$id"
    [ -z "$text" ] || sed 's/^[[:space:]]*$/./; s/^/ /' "$text"
    printf 'Comment: Go module %s %s, compiled into %s\n' "$mod" "$ver" "$where"
    if [ -f "$dir/NOTICE.txt" ] || [ -f "$dir/NOTICE" ]; then
      printf ' Its NOTICE file:\n'; sed 's/^[[:space:]]*$/./; s/^/ /' "$dir"/NOTICE*
    fi
  done < <(for b in "${BINARIES[@]}"; do go version -m "$b"; done | awk '$1 == "dep" { print $2, $3 }' | sort -u)
  printf '\nLicense: GPL-2\n On Debian systems the full text of the GNU General Public License version 2\n is in /usr/share/common-licenses/GPL-2.\n'
  printf '\nLicense: Apache-2.0\n On Debian systems the full text of the Apache License, Version 2.0, is in\n /usr/share/common-licenses/Apache-2.0.\n'
  printf '\nLicense: MPL-2.0\n On Debian systems the full text of the Mozilla Public License 2.0 is in\n /usr/share/common-licenses/MPL-2.0.\n'
} >"$DOC/copyright"
chmod 0644 "$DOC/copyright"

# Depends: the C library the cgo part links (dpkg-shlibdeps), and Debian's
# server of the same major version.
SHLIBS=$(cd build/deb && mkdir -p debian && printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$PKG" "$PKG" >debian/control &&
  dpkg-shlibdeps -O "root/usr/lib/mysql/plugin/aws_key_management.so" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || die "dpkg-shlibdeps found no dependencies of the library (install dpkg-dev)"
rm -rf build/deb/debian
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SHLIBS@/$SHLIBS/" \
    -e "s/@MAJOR@/$MAJOR/g" -e "s/@NEXT@/$NEXT/g" \
    -e "s/@SIZE@/$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)/" packaging/deb/control.in >"$STAGE/DEBIAN/control"
echo /etc/mysql/mariadb.conf.d/50-aws-key-management.cnf >"$STAGE/DEBIAN/conffiles"
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/conffiles" "$STAGE/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$OUT" >/dev/null
echo "$OUT"
