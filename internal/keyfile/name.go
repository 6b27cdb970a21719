package keyfile

import (
	"fmt"
	"strconv"
	"strings"
)

// Prefix starts every key file name.
const Prefix = "aws-kms-key."

// InvalidVersion is ENCRYPTION_KEY_VERSION_INVALID (~0u) from
// plugin_encryption.h: never a valid version number.
const InvalidVersion = ^uint32(0)

// Name returns the file name of a key version. Unlike upstream, which
// formats into a 20-byte buffer and so truncates the names of key ids of
// 100000 and above, the name is never cut short.
func Name(id, version uint32) string {
	return fmt.Sprintf("%s%d.%d", Prefix, id, version)
}

// ParseName extracts the key id and version from a key file name. It
// accepts what upstream's sscanf("aws-kms-key.%u.%u%n") accepts for names
// it writes: decimal digits (leading zeros allowed), both numbers above
// zero, nothing after the version. Unlike sscanf it refuses signs, spaces
// and values that overflow 32 bits, and the version ~0u that the server
// reserves as "invalid".
func ParseName(name string) (id, version uint32, ok bool) {
	rest, found := strings.CutPrefix(name, Prefix)
	if !found {
		return 0, 0, false
	}
	idText, verText, found := strings.Cut(rest, ".")
	if !found {
		return 0, 0, false
	}
	id, ok = parseNumber(idText)
	if !ok {
		return 0, 0, false
	}
	version, ok = parseNumber(verText)
	if !ok || version == InvalidVersion {
		return 0, 0, false
	}
	return id, version, true
}

// parseNumber accepts ASCII digits whose value is in 1..2^32-1.
func parseNumber(s string) (uint32, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}
