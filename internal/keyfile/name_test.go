package keyfile

import (
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name    string
		id, ver uint32
		ok      bool
	}{
		{"aws-kms-key.1.1", 1, 1, true},
		{"aws-kms-key.7.12", 7, 12, true},
		{"aws-kms-key.100000.3", 100000, 3, true},
		{"aws-kms-key.4294967295.1", 4294967295, 1, true},
		{"aws-kms-key.01.002", 1, 2, true}, // sscanf accepts leading zeros
		{"aws-kms-key.4294967296.1", 0, 0, false},
		{"aws-kms-key.1.4294967295", 0, 0, false}, // ENCRYPTION_KEY_VERSION_INVALID
		{"aws-kms-key.0.1", 0, 0, false},
		{"aws-kms-key.1.0", 0, 0, false},
		{"aws-kms-key.1", 0, 0, false},
		{"aws-kms-key.1.", 0, 0, false},
		{"aws-kms-key..1", 0, 0, false},
		{"aws-kms-key.1.1x", 0, 0, false},
		{"aws-kms-key.1.1.tmp-abcdef", 0, 0, false},
		{"aws-kms-key.-1.1", 0, 0, false},
		{"aws-kms-key.+1.1", 0, 0, false},
		{"aws-kms-key. 1.1", 0, 0, false},
		{"aws-kms-key.1.1 ", 0, 0, false},
		{"aws-kms-key.1.2.3", 0, 0, false},
		{"xaws-kms-key.1.1", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tc := range tests {
		id, ver, ok := ParseName(tc.name)
		if id != tc.id || ver != tc.ver || ok != tc.ok {
			t.Errorf("ParseName(%q) = %d, %d, %v; want %d, %d, %v", tc.name, id, ver, ok, tc.id, tc.ver, tc.ok)
		}
	}
}

func TestNameRoundTrip(t *testing.T) {
	for _, c := range [][2]uint32{{1, 1}, {99999, 1}, {100000, 1}, {123456, 7}, {4294967295, 4294967294}} {
		n := Name(c[0], c[1])
		id, ver, ok := ParseName(n)
		if !ok || id != c[0] || ver != c[1] {
			t.Errorf("ParseName(Name(%d, %d)=%q) = %d, %d, %v", c[0], c[1], n, id, ver, ok)
		}
	}
	// Upstream's 20-byte buffer turned key 100000 version 1 into
	// "aws-kms-key.100000." (19 characters): ours is complete.
	if got := Name(100000, 1); got != "aws-kms-key.100000.1" {
		t.Errorf("Name(100000, 1) = %q", got)
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"aws-kms-key.1.1", "aws-kms-key.01.2", "aws-kms-key.4294967295.4294967294", "aws-kms-key.1.1.tmp-00", "aws-kms-key.-1.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ver, ok := ParseName(s)
		if !ok {
			if id != 0 || ver != 0 {
				t.Fatalf("rejected %q but returned %d, %d", s, id, ver)
			}
			return
		}
		if id == 0 || ver == 0 || ver == InvalidVersion {
			t.Fatalf("accepted %q with id %d version %d", s, id, ver)
		}
		// Anything accepted must be a canonical name once leading zeros go.
		id2, ver2, ok2 := ParseName(Name(id, ver))
		if !ok2 || id2 != id || ver2 != ver {
			t.Fatalf("%q -> %d.%d does not round-trip", s, id, ver)
		}
	})
}
