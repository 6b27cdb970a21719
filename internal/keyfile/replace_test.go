package keyfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Replace puts new content under the same name: mode 0400, the old
// file's modification time, a new inode (rename, not a write in place),
// no temporary file left, nothing else in the directory touched.
func TestReplace(t *testing.T) {
	dir := t.TempDir()
	s := New(dir)
	if err := s.Create(3, 1, []byte("old blob")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(3, 2, []byte("other version")); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := os.Chtimes(s.Path(3, 1), created, created); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(s.Path(3, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Replace(3, 1, []byte("new blob, longer than the old one")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(3, 1)
	if err != nil || string(got) != "new blob, longer than the old one" {
		t.Fatalf("after Replace: %q, %v", got, err)
	}
	after, err := os.Stat(s.Path(3, 1))
	if err != nil {
		t.Fatal(err)
	}
	if after.Mode().Perm() != FileMode || !after.ModTime().Equal(created) || os.SameFile(before, after) {
		t.Errorf("after Replace: mode %v, mtime %v (want %v), same inode %v", after.Mode(), after.ModTime(), created, os.SameFile(before, after))
	}
	if names := dirNames(t, dir); !reflect.DeepEqual(names, []string{Name(3, 1), Name(3, 2)}) {
		t.Errorf("directory: %v", names)
	}
	if got, _ := s.Read(3, 2); string(got) != "other version" {
		t.Errorf("another version changed: %q", got)
	}
}

// Replace never creates a version and never replaces what is not a key
// file: a missing file, a symbolic link, a directory, bad sizes and bad
// numbers are errors naming the file, and nothing changes.
func TestReplaceRefuses(t *testing.T) {
	dir := t.TempDir()
	s := New(dir)
	if err := s.Create(1, 1, []byte("blob")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(Name(1, 1), s.Path(2, 1)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s.Path(3, 1), 0o700); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id, ver uint32
		blob    []byte
		want    error
		text    string
	}{
		{4, 1, []byte("b"), ErrNotFound, s.Path(4, 1)},
		{2, 1, []byte("b"), ErrSymlink, s.Path(2, 1)},
		{3, 1, []byte("b"), ErrNotRegular, s.Path(3, 1)},
		{1, 1, nil, nil, "out of range 1..6144"},
		{1, 1, make([]byte, MaxBlobSize+1), nil, "out of range 1..6144"},
		{0, 1, []byte("b"), nil, "not a valid key id and version"},
		{1, MaxVersion + 1, []byte("b"), nil, "not a valid key id and version"},
	}
	for _, c := range cases {
		err := s.Replace(c.id, c.ver, c.blob)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("Replace(%d, %d, %d bytes) = %v, want %v naming %q", c.id, c.ver, len(c.blob), err, c.want, c.text)
		}
	}
	if got, err := s.Read(1, 1); err != nil || string(got) != "blob" {
		t.Errorf("key 1.1 changed: %q, %v", got, err)
	}
	if names := dirNames(t, dir); !reflect.DeepEqual(names, []string{Name(1, 1), Name(2, 1), Name(3, 1)}) {
		t.Errorf("directory: %v", names)
	}
}

// The new file keeps the old one's owner and group, so a tool run as root
// does not leave a file the server's user cannot read; group read stays
// if the old file had it; other bits never come back.
func TestReplaceKeepsOwnerAndGroupRead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root; the unit level runs as root")
	}
	dir := t.TempDir()
	s := New(dir)
	for i, mode := range []os.FileMode{0o400, 0o440, 0o444, 0o644} {
		id := uint32(i + 1)
		if err := s.Create(id, 1, []byte("old")); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(s.Path(id, 1), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(s.Path(id, 1), mode); err != nil {
			t.Fatal(err)
		}
		if err := s.Replace(id, 1, []byte("new")); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(s.Path(id, 1))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		want := FileMode | mode&0o040
		if sys.Uid != 65534 || sys.Gid != 65534 || st.Mode().Perm() != want {
			t.Errorf("old mode %v: new file %d:%d %v, want 65534:65534 %v", mode, sys.Uid, sys.Gid, st.Mode().Perm(), want)
		}
	}
}

// Each step of Replace that fails (disk full, read-only, I/O error)
// gives an error naming the file that wraps the system error; the old
// content stays and no temporary file is left, except that a failed
// directory fsync after the rename says the new content is in place.
func TestReplaceWriteFaults(t *testing.T) {
	cases := []struct {
		step     string
		errno    syscall.Errno
		newInPut bool
	}{
		{"open", syscall.EROFS, false},
		{"write", syscall.ENOSPC, false},
		{"sync", syscall.EIO, false},
		{"rename", syscall.EROFS, false},
		{"syncdir", syscall.EIO, true},
	}
	for _, c := range cases {
		t.Run(c.step, func(t *testing.T) {
			dir := t.TempDir()
			s := New(dir)
			if err := s.Create(7, 1, []byte("old content")); err != nil {
				t.Fatal(err)
			}
			calls := 0
			setHook(t, func(step string, f *os.File) error {
				if step != c.step {
					return nil
				}
				calls++
				return &os.PathError{Op: step, Path: "hooked", Err: c.errno}
			})
			err := s.Replace(7, 1, []byte("new content"))
			testHook = nil
			if calls != 1 || err == nil || !errors.Is(err, c.errno) || !strings.Contains(err.Error(), s.Path(7, 1)) {
				t.Fatalf("hook ran %d times; Replace = %v, want an error naming the file and wrapping %v", calls, err, c.errno)
			}
			got, _ := s.Read(7, 1)
			want := "old content"
			if c.newInPut {
				want = "new content"
				if !strings.Contains(err.Error(), "the new content is in place") {
					t.Errorf("error %q does not say the new content is in place", err)
				}
			}
			if string(got) != want {
				t.Errorf("content after the failed step: %q, want %q", got, want)
			}
			if names := dirNames(t, dir); !reflect.DeepEqual(names, []string{Name(7, 1)}) {
				t.Errorf("directory: %v", names)
			}
		})
	}
}

// With the hook installed but injecting nothing, every step runs once, in
// order.
func TestReplaceHookSteps(t *testing.T) {
	s := New(t.TempDir())
	if err := s.Create(1, 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	var steps []string
	setHook(t, func(step string, f *os.File) error { steps = append(steps, step); return nil })
	if err := s.Replace(1, 1, []byte("y")); err != nil {
		t.Fatal(err)
	}
	if want := []string{"open", "write", "sync", "rename", "syncdir"}; !reflect.DeepEqual(steps, want) {
		t.Fatalf("steps %v, want %v", steps, want)
	}
}

// Readers that open the file while it is replaced again and again never
// see an error, an empty file or a mix: always one whole generation.
func TestReplaceAtomicForReaders(t *testing.T) {
	s := New(t.TempDir())
	// Generation g: its number, then a byte that depends on it, to a
	// length that depends on it.
	gen := func(g int) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(g))
		return append(b, bytes.Repeat([]byte{byte(g)}, 100+g%50)...)
	}
	if err := s.Create(1, 1, gen(0)); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				b, err := s.Read(1, 1)
				if err != nil {
					errs <- err
					return
				}
				if len(b) < 4 || !bytes.Equal(b, gen(int(binary.BigEndian.Uint32(b)))) {
					errs <- fmt.Errorf("read a mixed or cut content: %d bytes", len(b))
					return
				}
				reads.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	g := 1
	for ; g < 300 && time.Now().Before(deadline); g++ {
		if err := s.Replace(1, 1, gen(g)); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if reads.Load() < 10 {
		t.Errorf("only %d reads during %d replacements", reads.Load(), g)
	}
}

// replaceGenEnv marks the child of TestReplaceSurvivesKill9.
const replaceGenEnv = "KEYFILE_REPLACE_CHILD"

// replaceBlob is generation g of key file (id, ver): 150..249 bytes that
// depend on all three, so a file is recognized byte for byte.
func replaceBlob(id, ver uint32, g int) []byte {
	n := 150 + (int(id)*31+int(ver)*7+g*13)%100
	var out []byte
	for i := 0; len(out) < n; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("key %d version %d generation %d block %d", id, ver, g, i)))
		out = append(out, sum[:]...)
	}
	return out[:n]
}

// maxReplaceGen bounds the generations a check looks for.
const maxReplaceGen = 100000

// generationOf returns the generation a file holds, or -1.
func generationOf(id, ver uint32, data []byte, from int) int {
	for g := from; g <= maxReplaceGen && g < from+5000; g++ {
		if bytes.Equal(data, replaceBlob(id, ver, g)) {
			return g
		}
	}
	return -1
}

const replaceFiles = 3

// TestReplaceCrashChild is the child of TestReplaceSurvivesKill9: it
// replaces the key files 1.1 .. 3.1 with their next generation in a loop
// until it is killed. On its own it is skipped.
func TestReplaceCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" || os.Getenv(replaceGenEnv) != "1" {
		t.Skip("the child of TestReplaceSurvivesKill9; it runs only when that test starts it")
	}
	s := New(dir)
	if os.Getenv(crashSlowEnv) == "1" {
		testHook = func(string, *os.File) error {
			time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
			return nil
		}
	}
	gens := map[uint32]int{}
	for id := uint32(1); id <= replaceFiles; id++ {
		data, err := s.Read(id, 1)
		if err != nil {
			t.Fatal(err)
		}
		if gens[id] = generationOf(id, 1, data, 0); gens[id] < 0 {
			t.Fatalf("key file %d.1 holds no generation", id)
		}
	}
	fmt.Println("crash child: replacing")
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		id := uint32(i%replaceFiles + 1)
		if err := s.Replace(id, 1, replaceBlob(id, 1, gens[id]+1)); err != nil {
			t.Fatalf("Replace(%d, 1): %v", id, err)
		}
		gens[id]++
	}
	t.Fatal("not killed within 20 s")
}

// A kill -9 at any moment of Replace leaves each key file whole, with the
// generation before or after (never older than what the previous check
// saw, never a mix, never missing), mode 0400, plus at most temporary
// files that hold a prefix of a generation and that CleanTemp removes.
// Bounded: 40 kills or 30 s.
func TestReplaceSurvivesKill9(t *testing.T) {
	s := New(t.TempDir())
	for id := uint32(1); id <= replaceFiles; id++ {
		if err := s.Create(id, 1, replaceBlob(id, 1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(replaceGenEnv, "1")
	seen := map[uint32]int{}
	start := time.Now()
	kills, temps := 0, 0
	for i := 0; i < 40 && time.Since(start) < 30*time.Second; i++ {
		kill9Child(t, "TestReplaceCrashChild", s.dir, i%2 == 1)
		kills++
		for _, de := range dirEntries(t, s.dir) {
			name := de.Name()
			data, err := os.ReadFile(filepath.Join(s.dir, name))
			if err != nil {
				t.Fatal(err)
			}
			st, _ := os.Lstat(filepath.Join(s.dir, name))
			if !st.Mode().IsRegular() || st.Mode().Perm() != FileMode {
				t.Errorf("%s: mode %v", name, st.Mode())
			}
			if id, ver, ok := ParseName(name); ok {
				g := generationOf(id, ver, data, seen[id])
				if g < 0 {
					t.Fatalf("kill %d: %s holds %d bytes of no generation from %d on (cut, mixed or older)", kills, name, len(data), seen[id])
				}
				seen[id] = g
				continue
			}
			if !tempName(name) {
				t.Fatalf("kill %d: unexpected file %s", kills, name)
			}
			temps++
		}
		if n := len(seen); n != replaceFiles {
			t.Fatalf("kill %d: %d key files, want %d (one went missing)", kills, n, replaceFiles)
		}
		if _, err := s.CleanTemp(); err != nil {
			t.Fatal(err)
		}
		if names := dirNames(t, s.dir); len(names) != replaceFiles {
			t.Fatalf("after CleanTemp: %v", names)
		}
	}
	total := 0
	for _, g := range seen {
		total += g
	}
	t.Logf("%d kills in %v: %d replacements survived, %d temporary files left by kills (removed by CleanTemp)",
		kills, time.Since(start).Round(time.Millisecond), total, temps)
	if total < kills/2 {
		t.Errorf("only %d replacements in %d runs: the children hardly got to Replace", total, kills)
	}
	if temps == 0 {
		t.Errorf("no kill landed while a temporary file existed: the test did not reach the crash window")
	}
}

func dirEntries(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return des
}
