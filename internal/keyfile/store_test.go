package keyfile

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

// The permission error for a key file the server may not read is
// TestReadUnreadablePermission's (as uid 65534 in a child when the tests
// run as root).

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

// Create in a key directory that does not exist fails with ErrNotExist.
func TestCreateMissingDir(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "missing"))
	err := s.Create(1, 1, []byte("x"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Create in missing dir = %v", err)
	}
}

// roMountEnv names the key directory for the child of
// TestCreateReadOnlyMount.
const roMountEnv = "KEYFILE_ROMOUNT_DIR"

// Create in a key directory on a read-only file system fails with EROFS,
// naming the file, and leaves the previous version as it was. Root writes
// a directory of any mode, so the directory is a tmpfs remounted
// read-only, in a child process of this test binary with its own mount
// namespace: the mount is never seen outside it and ends with it.
func TestCreateReadOnlyMount(t *testing.T) {
	if os.Getenv(roMountEnv) != "" {
		t.Fatal("the child runs only TestReadOnlyMountChild")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs in a private mount namespace needs root (CAP_SYS_ADMIN); the unit level runs as root")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestReadOnlyMountChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), roMountEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // Go makes / private in it
	out, err := runBounded(cmd, 60*time.Second)
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestReadOnlyMountChild")) {
		t.Fatalf("child with a read-only tmpfs: %v\n%s", err, out)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("the child's mount or files are visible here: %v", names)
	}
	t.Logf("checked in a child process with its own mount namespace:\n%s", out)
}

// TestReadOnlyMountChild is the child of TestCreateReadOnlyMount; on its
// own it is skipped.
func TestReadOnlyMountChild(t *testing.T) {
	dir := os.Getenv(roMountEnv)
	if dir == "" {
		t.Skip("the child of TestCreateReadOnlyMount; it runs only when that test starts it, in a private mount namespace")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	s := New(dir)
	prev := []byte("version 1, written before the remount")
	if err := s.Create(5, 1, prev); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	err := s.Create(5, 2, []byte("version 2"))
	if !errors.Is(err, syscall.EROFS) || errors.Is(err, ErrExists) {
		t.Fatalf("Create on a read-only file system = %v, want EROFS", err)
	}
	if !strings.Contains(err.Error(), s.Path(5, 2)) || !strings.Contains(err.Error(), "read-only file system") {
		t.Errorf("error %q does not name %s and the reason", err, s.Path(5, 2))
	}
	if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{Name(5, 1)}) {
		t.Errorf("directory after the failed Create: %v, want only %s", got, Name(5, 1))
	}
	if got, err := s.Read(5, 1); err != nil || !bytes.Equal(got, prev) {
		t.Errorf("previous version: %q, %v", got, err)
	}
	if v, err := s.Latest(5); v != 1 || err != nil {
		t.Errorf("Latest = %d, %v; want 1", v, err)
	}
	t.Logf("uid %d, read-only tmpfs: %v", os.Geteuid(), err)
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
