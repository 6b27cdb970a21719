package keyfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestCreateReadScan(t *testing.T) {
	dir := t.TempDir()
	s := New(dir)
	blob := []byte("wrapped-key-bytes")
	if err := s.Create(3, 1, blob); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(3, 2, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(100000, 1, []byte("big id")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(3, 1)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("Read = %q, %v", got, err)
	}
	st, err := os.Stat(filepath.Join(dir, "aws-kms-key.3.1"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != FileMode {
		t.Errorf("mode %v, want %v", st.Mode().Perm(), FileMode)
	}
	entries, err := s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{3, 1}, {3, 2}, {100000, 1}}
	if !reflect.DeepEqual(entries, want) {
		t.Errorf("Scan = %v, want %v", entries, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "aws-kms-key.100000.1")); err != nil {
		t.Errorf("key id 100000 file: %v", err)
	}
}

func TestCreateNeverReplaces(t *testing.T) {
	s := New(t.TempDir())
	if err := s.Create(1, 1, []byte("first")); err != nil {
		t.Fatal(err)
	}
	err := s.Create(1, 1, []byte("second"))
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	got, _ := s.Read(1, 1)
	if string(got) != "first" {
		t.Fatalf("file replaced: %q", got)
	}
	// No temporary file is left behind by the failed create.
	des, _ := os.ReadDir(s.dir)
	if len(des) != 1 {
		t.Fatalf("directory has %d entries, want 1", len(des))
	}
}

func TestConcurrentCreateOneWinner(t *testing.T) {
	s := New(t.TempDir())
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = s.Create(9, 1, []byte{byte(i + 1)})
		}(i)
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrExists):
			t.Errorf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d creates succeeded, want exactly 1", wins)
	}
}

func TestReadBadFiles(t *testing.T) {
	dir := t.TempDir()
	s := New(dir)
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("aws-kms-key.1.1", nil)
	write("aws-kms-key.2.1", make([]byte, MaxBlobSize+1))
	if err := os.Mkdir(filepath.Join(dir, "aws-kms-key.3.1"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("aws-kms-key.4.1", make([]byte, MaxBlobSize))
	cases := []struct {
		id   uint32
		want error
	}{{1, ErrEmpty}, {2, ErrTooLarge}, {3, ErrNotRegular}, {5, ErrNotFound}}
	for _, c := range cases {
		_, err := s.Read(c.id, 1)
		if !errors.Is(err, c.want) {
			t.Errorf("Read(%d) = %v, want %v", c.id, err, c.want)
		}
		if err != nil && !bytes.Contains([]byte(err.Error()), []byte(Name(c.id, 1))) {
			t.Errorf("error %q does not name the file", err)
		}
	}
	if b, err := s.Read(4, 1); err != nil || len(b) != MaxBlobSize {
		t.Errorf("maximum-size file: %d bytes, %v", len(b), err)
	}
}

func TestReadUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		// root reads a 0000 file anyway; the permission case is covered
		// by the mtr suite's unreadable-file test under a real server.
		t.Log("running as root: checking that a 0000 file still reads (root bypasses modes)")
	}
	dir := t.TempDir()
	s := New(dir)
	p := filepath.Join(dir, "aws-kms-key.1.1")
	if err := os.WriteFile(p, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := s.Read(1, 1)
	if os.Geteuid() != 0 && !errors.Is(err, os.ErrPermission) {
		t.Errorf("Read of mode 0000 file = %v, want permission error", err)
	}
	if os.Geteuid() == 0 && err != nil {
		t.Errorf("root Read = %v", err)
	}
}

func TestCleanTemp(t *testing.T) {
	dir := t.TempDir()
	s := New(dir)
	// Only names exactly as Create makes them go: an operator's own copies
	// (other suffixes, capital hex, a non-canonical key file name) stay.
	keep := []string{"aws-kms-key.2.1", "other.tmp-1", "aws-kms-key.x.tmp-1", "aws-kms-key.1.1.tmp-backup",
		"aws-kms-key.1.1.tmp-0a0b0c", "aws-kms-key.1.1.tmp-0A0B0C0D0E0F", "aws-kms-key.1.1.tmp-0a0b0c0d0e0f0",
		"aws-kms-key.01.1.tmp-0a0b0c0d0e0f", "aws-kms-key.1.1.tmp-0a0b0c0d0e0f.orig"}
	for _, n := range append([]string{"aws-kms-key.1.1.tmp-0a0b0c0d0e0f"}, keep...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := s.CleanTemp()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(removed, []string{"aws-kms-key.1.1.tmp-0a0b0c0d0e0f"}) {
		t.Errorf("removed %v", removed)
	}
	for _, n := range keep {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was removed: %v", n, err)
		}
	}
}

func TestCreateReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Log("root ignores directory modes; using a missing directory instead")
	}
	s := New(filepath.Join(t.TempDir(), "missing"))
	err := s.Create(1, 1, []byte("x"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Create in missing dir = %v", err)
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("blob"))
	f.Add(make([]byte, MaxBlobSize+1))
	dir := f.TempDir()
	s := New(dir)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := s.Path(1, 1)
		os.Remove(p)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := s.Read(1, 1)
		switch {
		case len(data) == 0:
			if !errors.Is(err, ErrEmpty) {
				t.Fatalf("empty: %v", err)
			}
		case len(data) > MaxBlobSize:
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d bytes: %v", len(data), err)
			}
		default:
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes: got %d, %v", len(data), len(got), err)
			}
		}
	})
}

func TestLatest(t *testing.T) {
	s := New(t.TempDir())
	if v, err := s.Latest(4); v != 0 || err != nil {
		t.Fatalf("Latest on empty dir = %d, %v", v, err)
	}
	for _, v := range []uint32{1, 3, 2} {
		if err := s.Create(4, v, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Create(5, 9, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Latest(4); v != 3 || err != nil {
		t.Fatalf("Latest(4) = %d, %v; want 3", v, err)
	}
	if _, err := New(filepath.Join(t.TempDir(), "gone")).Latest(1); err == nil {
		t.Fatal("Latest on a missing directory: no error")
	}
}

// Create refuses what ParseName would not find again.
func TestCreateRefusesUnreadableNames(t *testing.T) {
	s := New(t.TempDir())
	for _, c := range [][2]uint32{{0, 1}, {1, 0}, {1, MaxVersion + 1}, {1, InvalidVersion}} {
		if err := s.Create(c[0], c[1], []byte("x")); err == nil || !strings.Contains(err.Error(), "not a valid key id and version") {
			t.Errorf("Create(%d, %d) = %v, want a refusal", c[0], c[1], err)
		}
	}
	if err := s.Create(1, MaxVersion, []byte("x")); err != nil {
		t.Errorf("Create(1, MaxVersion) = %v", err)
	}
	if v, err := s.Latest(1); v != MaxVersion || err != nil {
		t.Errorf("Latest = %d, %v; want MaxVersion", v, err)
	}
}
