package keyfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// setHook installs testHook for one test and removes it afterwards. Tests
// that use it must not run in parallel with other tests of the package.
func setHook(t *testing.T, h func(step string, f *os.File) error) {
	t.Helper()
	testHook = h
	t.Cleanup(func() { testHook = nil })
}

// dirNames lists a directory, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// A write, create, fsync or link that fails (disk full, read-only file
// system, I/O error) makes Create return an error that names the key file
// and wraps the system error; it leaves neither the new version nor a
// temporary file, and the previous version is untouched.
func TestCreateWriteFaults(t *testing.T) {
	cases := []struct {
		name  string
		step  string
		errno syscall.Errno
		// partial: the hook writes half the data before failing, as a
		// write that runs out of space part way does.
		partial bool
	}{
		{"disk full on write", "write", syscall.ENOSPC, true},
		{"disk full before any byte", "write", syscall.ENOSPC, false},
		{"quota exceeded on write", "write", syscall.EDQUOT, true},
		{"read-only file system on create", "open", syscall.EROFS, false},
		{"no space for a new inode", "open", syscall.ENOSPC, false},
		{"fsync fails", "sync", syscall.EIO, false},
		{"fsync finds the disk full", "sync", syscall.ENOSPC, false},
		{"link fails: directory full", "link", syscall.ENOSPC, false},
		{"link fails: read-only", "link", syscall.EROFS, false},
		{"directory fsync fails", "syncdir", syscall.EIO, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s := New(dir)
			prev := []byte("previous version, complete")
			if err := s.Create(7, 1, prev); err != nil {
				t.Fatal(err)
			}
			prevInfo, err := os.Stat(s.Path(7, 1))
			if err != nil {
				t.Fatal(err)
			}
			blob := bytes.Repeat([]byte("N"), 300)
			calls := 0
			setHook(t, func(step string, f *os.File) error {
				if step != c.step {
					return nil
				}
				calls++
				if c.partial {
					if _, err := f.Write(blob[:len(blob)/2]); err != nil {
						t.Errorf("partial write: %v", err)
					}
				}
				name := "hooked"
				if f != nil {
					name = f.Name()
				}
				return &os.PathError{Op: c.step, Path: name, Err: c.errno}
			})
			err = s.Create(7, 2, blob)
			testHook = nil
			if calls != 1 {
				t.Fatalf("hook for step %q ran %d times", c.step, calls)
			}
			if err == nil {
				t.Fatal("Create succeeded despite the injected fault")
			}
			if !errors.Is(err, c.errno) {
				t.Errorf("error %q does not wrap %v", err, c.errno)
			}
			if !strings.Contains(err.Error(), s.Path(7, 2)) {
				t.Errorf("error %q does not name %s", err, s.Path(7, 2))
			}
			if errors.Is(err, ErrExists) {
				t.Errorf("error %q claims the version exists", err)
			}
			if got := dirNames(t, dir); !reflect.DeepEqual(got, []string{Name(7, 1)}) {
				t.Errorf("directory after the failed Create: %v, want only %s", got, Name(7, 1))
			}
			got, err := s.Read(7, 1)
			if err != nil || !bytes.Equal(got, prev) {
				t.Errorf("previous version: %q, %v", got, err)
			}
			if st, err := os.Stat(s.Path(7, 1)); err != nil || !os.SameFile(st, prevInfo) ||
				!st.ModTime().Equal(prevInfo.ModTime()) || st.Mode() != prevInfo.Mode() {
				t.Errorf("previous version's file changed: %v", err)
			}
			if v, err := s.Latest(7); v != 1 || err != nil {
				t.Errorf("Latest = %d, %v; want 1", v, err)
			}
			// The fault was transient: the same version can be created
			// afterwards (nothing is left in the way).
			if err := s.Create(7, 2, blob); err != nil {
				t.Fatalf("Create after the fault cleared: %v", err)
			}
			if got, err := s.Read(7, 2); err != nil || !bytes.Equal(got, blob) {
				t.Errorf("version 2 after the fault cleared: %d bytes, %v", len(got), err)
			}
		})
	}
}

// With the hook installed but injecting nothing, Create behaves as in
// production: every step runs once, in order.
func TestCreateHookSteps(t *testing.T) {
	var steps []string
	setHook(t, func(step string, f *os.File) error {
		if (step == "write" || step == "sync") != (f != nil) {
			t.Errorf("step %s: file %v", step, f)
		}
		steps = append(steps, step)
		return nil
	})
	s := New(t.TempDir())
	if err := s.Create(1, 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	want := []string{"open", "write", "sync", "link", "syncdir"}
	if !reflect.DeepEqual(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
}

// Files that are not key files but have a key file's name are reported,
// naming the file, and never block: a FIFO (which open(2) would wait on
// for a writer), a symlink to a FIFO, a symlink loop (unreadable even for
// root: ELOOP), a dangling symlink, a symlink to a character device (all
// links are refused as links, O_NOFOLLOW), a socket (open(2) fails with
// ENXIO) and a character device (a copy of /dev/null: it opens, and is
// refused by the type check).
func TestReadSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	s := New(dir)
	p := func(id uint32) string { return s.Path(id, 1) }
	if err := syscall.Mkfifo(p(1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(Name(1, 1), p(2)); err != nil { // -> the FIFO
		t.Fatal(err)
	}
	if err := os.Symlink(Name(3, 1), p(3)); err != nil { // itself
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", p(4)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", p(5)); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(p(6), syscall.S_IFSOCK|0o600, 0); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id   uint32
		want error
		text string
	}{
		{1, ErrNotRegular, "not a regular file"},
		{2, ErrSymlink, "is a symbolic link"},
		{3, ErrSymlink, "is a symbolic link"},
		{4, ErrSymlink, "is a symbolic link"},
		{5, ErrSymlink, "is a symbolic link"},
		{6, syscall.ENXIO, "no such device or address"},
	}
	check := func(t *testing.T, id uint32, want error, text string) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := s.Read(id, 1)
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Read of %s blocks", Name(id, 1))
		}
		if err == nil {
			t.Errorf("Read(%d) succeeded", id)
			return
		}
		if !errors.Is(err, want) {
			t.Errorf("Read(%d) = %v, want %v", id, err, want)
		}
		if !strings.Contains(err.Error(), p(id)) || !strings.Contains(err.Error(), text) {
			t.Errorf("Read(%d) = %q: does not name %s and say %q", id, err, p(id), text)
		}
	}
	for _, c := range cases {
		check(t, c.id, c.want, c.text)
	}
	n := len(cases)
	t.Run("character device", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("mknod of a character device needs root (CAP_MKNOD); the unit level runs as root")
		}
		// Major 1, minor 3: /dev/null.
		if err := syscall.Mknod(p(7), syscall.S_IFCHR|0o600, 1<<8|3); err != nil {
			t.Fatal(err)
		}
		n++
		check(t, 7, ErrNotRegular, "not a regular file")
	})
	// Scan lists them (their names parse); CleanTemp leaves them alone.
	entries, err := s.Scan()
	if err != nil || len(entries) != n {
		t.Fatalf("Scan = %v, %v; want %d entries", entries, err, n)
	}
	if removed, err := s.CleanTemp(); len(removed) != 0 || err != nil {
		t.Fatalf("CleanTemp = %v, %v", removed, err)
	}
}

// unreadableEnv names the key directory for the child that runs as an
// unprivileged user (TestReadUnreadablePermission).
const unreadableEnv = "KEYFILE_UNREADABLE_DIR"

// A key file the server's user may not read (mode 0000, owned by someone
// else) gives a permission error naming the file. Root reads any file, so
// when the tests run as root (as here, and in the mtr suite) the check
// runs in a child process of this test binary with the uid and gid of
// nobody; it is never skipped.
func TestReadUnreadablePermission(t *testing.T) {
	if dir := os.Getenv(unreadableEnv); dir != "" {
		t.Fatal("the child runs only TestUnreadableChild")
	}
	base, err := os.MkdirTemp("", "keyfile-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, "keys")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// 0755 on the way down, so that nobody can reach the file and run
	// the binary; the file itself has mode 0000.
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, Name(1, 1)), []byte("blob"), 0); err != nil {
		t.Fatal(err)
	}
	if os.Chmod(filepath.Join(dir, Name(1, 1)), 0) != nil {
		t.Fatal("chmod 0000")
	}
	if os.Geteuid() != 0 {
		checkUnreadable(t, dir)
		return
	}
	// Root: copy the test binary where nobody can run it, and run the
	// check as nobody (uid/gid 65534).
	bin := filepath.Join(base, "keyfile.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestUnreadableChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), unreadableEnv+"="+dir)
	cmd.Dir = base
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := runBounded(cmd, 60*time.Second)
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestUnreadableChild")) {
		t.Fatalf("child as nobody: %v\n%s", err, out)
	}
	t.Logf("checked as uid 65534 in a child process:\n%s", out)
}

// TestUnreadableChild is the unprivileged half of
// TestReadUnreadablePermission; on its own it is skipped.
func TestUnreadableChild(t *testing.T) {
	dir := os.Getenv(unreadableEnv)
	if dir == "" {
		t.Skip("the unprivileged half of TestReadUnreadablePermission; it runs only when that test starts it")
	}
	if os.Geteuid() == 0 {
		t.Fatal("child runs as root")
	}
	checkUnreadable(t, dir)
}

func checkUnreadable(t *testing.T, dir string) {
	s := New(dir)
	_, err := s.Read(1, 1)
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Read of a mode 0000 file as uid %d = %v, want a permission error", os.Geteuid(), err)
	}
	if !strings.Contains(err.Error(), s.Path(1, 1)) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("error %q does not name the file and the reason", err)
	}
	t.Logf("uid %d: %v", os.Geteuid(), err)
	// The file is still listed (its name parses) and other keys are not
	// affected.
	if entries, err := s.Scan(); err != nil || len(entries) != 1 {
		t.Fatalf("Scan = %v, %v", entries, err)
	}
}

// runBounded runs cmd and kills it after d.
func runBounded(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("killed after %v", d)
	}
}
