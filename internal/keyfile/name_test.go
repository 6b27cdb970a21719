package keyfile

import (
	"os"
	"path/filepath"
	"reflect"
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
		{"aws-kms-key.01.002", 0, 0, false}, // sscanf accepted it, then the plugin opened aws-kms-key.1.2
		{"aws-kms-key.1.0020", 0, 0, false},
		{"aws-kms-key.10.20", 10, 20, true},
		{"aws-kms-key.1.16777216", 1, 16777216, true}, // MaxVersion
		{"aws-kms-key.1.16777217", 0, 0, false},
		{"aws-kms-key.1.4294967294", 0, 0, false},
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
	for _, c := range [][2]uint32{{1, 1}, {99999, 1}, {100000, 1}, {123456, 7}, {4294967295, MaxVersion}} {
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
	for _, s := range []string{"aws-kms-key.1.1", "aws-kms-key.01.2", "aws-kms-key.4294967295.16777216", "aws-kms-key.1.1.tmp-00", "aws-kms-key.-1.1"} {
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
		if id == 0 || ver == 0 || ver > MaxVersion {
			t.Fatalf("accepted %q with id %d version %d", s, id, ver)
		}
		// Anything accepted is the very name the plugin opens for it.
		if Name(id, ver) != s {
			t.Fatalf("accepted %q as %d.%d, which the plugin names %q", s, id, ver, Name(id, ver))
		}
	})
}

// List names each key-file-like name it ignores, with the reason; other
// names (an operator's copies) are ignored without a word.
func TestListIgnored(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"aws-kms-key.1.1", "aws-kms-key.1.0020", "aws-kms-key.01.1", "aws-kms-key.2.4294967290",
		"aws-kms-key.3.0", "aws-kms-key.4.99999999999", "aws-kms-key.1.1.bak", "aws-kms-key.1.1.tmp-0a0b0c0d0e0f", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := New(dir).List()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l.Entries, []Entry{{1, 1}}) {
		t.Errorf("Entries = %v", l.Entries)
	}
	want := map[string]string{
		"aws-kms-key.1.0020":        "leading zeros: the plugin reads and writes this key version as aws-kms-key.1.20",
		"aws-kms-key.01.1":          "leading zeros: the plugin reads and writes this key version as aws-kms-key.1.1",
		"aws-kms-key.2.4294967290":  "version 4294967290 is above 16777216, the highest this plugin uses",
		"aws-kms-key.3.0":           "the version is 0",
		"aws-kms-key.4.99999999999": "the version 99999999999 is not a 32-bit number",
	}
	got := map[string]string{}
	for _, ig := range l.Ignored {
		got[ig.Name] = ig.Reason.Error()
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Ignored = %v\nwant      %v", got, want)
	}
}
