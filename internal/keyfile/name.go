package keyfile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Prefix starts every key file name.
const Prefix = "aws-kms-key."

// InvalidVersion is ENCRYPTION_KEY_VERSION_INVALID (~0u) from
// plugin_encryption.h: never a valid version number.
const InvalidVersion = ^uint32(0)

// MaxVersion is the highest key version this plugin reads or creates:
// 16777216 rotations, one a minute for 31 years. A stray file with a
// version near 2^32 would otherwise become the latest version and stop
// rotation of its key for good.
const MaxVersion uint32 = 1 << 24

// Name returns the file name of a key version. Unlike upstream, which
// formats into a 20-byte buffer and so truncates the names of key ids of
// 100000 and above, the name is never cut short.
func Name(id, version uint32) string {
	return fmt.Sprintf("%s%d.%d", Prefix, id, version)
}

// ParseName extracts the key id and version from a key file name. It
// accepts exactly the names Name makes, the names upstream's "%u.%u"
// writes: decimal digits without leading zeros, both numbers above zero,
// the version at most MaxVersion, nothing after it. (Upstream's sscanf
// also took signs, spaces and leading zeros; such names are refused: a
// name read as version 20 must be the file opened for version 20.)
func ParseName(name string) (id, version uint32, ok bool) {
	id, version, err := parseName(name)
	return id, version, err == nil
}

// errNotKeyName: the name is not of the form aws-kms-key.<digits>.<digits>
// at all (an operator's copy such as aws-kms-key.1.1.bak); such names are
// ignored without a word, as upstream ignores them.
var errNotKeyName = errors.New("not a key file name")

// parseName is ParseName with the reason a key-file-like name is refused.
func parseName(name string) (id, version uint32, err error) {
	rest, found := strings.CutPrefix(name, Prefix)
	if !found {
		return 0, 0, errNotKeyName
	}
	idText, verText, found := strings.Cut(rest, ".")
	if !found || !digits(idText) || !digits(verText) {
		return 0, 0, errNotKeyName
	}
	if leadingZero(idText) || leadingZero(verText) {
		return 0, 0, fmt.Errorf("leading zeros: the plugin reads and writes this key version as %s%s.%s",
			Prefix, trimZeros(idText), trimZeros(verText))
	}
	id, err = parseNumber(idText, "key id")
	if err != nil {
		return 0, 0, err
	}
	version, err = parseNumber(verText, "version")
	if err != nil {
		return 0, 0, err
	}
	if version > MaxVersion {
		return 0, 0, fmt.Errorf("version %d is above %d, the highest this plugin uses", version, MaxVersion)
	}
	return id, version, nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func leadingZero(s string) bool { return len(s) > 1 && s[0] == '0' }

func trimZeros(s string) string {
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return "0"
}

// parseNumber accepts decimal digits whose value is in 1..2^32-1.
func parseNumber(s, what string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	switch {
	case err != nil:
		return 0, fmt.Errorf("the %s %s is not a 32-bit number", what, s)
	case n == 0:
		return 0, fmt.Errorf("the %s is 0", what)
	}
	return uint32(n), nil
}
