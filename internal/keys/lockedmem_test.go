package keys

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
)

// vmFlags returns the VmFlags of the mapping of this process holding p.
func vmFlags(t *testing.T, p uintptr) []string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inside := false
	for sc.Scan() {
		line := sc.Text()
		// A mapping starts with "lo-hi perms offset dev inode [path]".
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") {
			var lo, hi uintptr
			if n, _ := fmt.Sscanf(fields[0], "%x-%x", &lo, &hi); n == 2 {
				inside = p >= lo && p < hi
				continue
			}
		}
		if inside && strings.HasPrefix(line, "VmFlags:") {
			return strings.Fields(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping holds %#x", p)
	return nil
}

func has(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// contains reports whether b lies in the arena.
func (a *keyArena) contains(b []byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(b) > 0 && a.owns(b)
}

// Keys live in a mapping marked "dd" (MADV_DONTDUMP: not in core dumps)
// and "lo" (mlock: never swapped) when locking is allowed; a released
// slot is wiped and reused.
func TestArenaDontDumpLockedWiped(t *testing.T) {
	a := newKeyArena()
	defer a.close(true)
	key, err := a.alloc()
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != MaxKeyLength || !bytes.Equal(key, make([]byte, MaxKeyLength)) || !a.contains(key) {
		t.Fatal("slot of the wrong size, not wiped, or outside the arena")
	}
	copy(key, bytes.Repeat([]byte{0xA5}, 32))
	flags := vmFlags(t, uintptr(unsafe.Pointer(&key[0])))
	if !has(flags, "dd") {
		t.Fatalf("key mapping flags %v lack dd (MADV_DONTDUMP)", flags)
	}
	switch {
	case a.locked && !has(flags, "lo"):
		t.Fatalf("arena says locked but flags are %v", flags)
	case !a.locked && os.Geteuid() == 0:
		t.Fatalf("root could not mlock the arena: %v", a.lockErr)
	case !a.locked:
		t.Logf("mlock refused (%v): RLIMIT_MEMLOCK; the plugin warns about this", a.lockErr)
	}
	a.release(key[:16]) // a key cut to its length gives back the whole slot
	if !bytes.Equal(key, make([]byte, MaxKeyLength)) {
		t.Fatal("released slot not wiped")
	}
	again, err := a.alloc()
	if err != nil || &again[0] != &key[0] {
		t.Fatalf("released slot not reused (%v)", err)
	}
}

// The arena grows past one chunk; memory that is not from the arena is
// wiped on release but never becomes a slot.
func TestArenaGrowsAndReleases(t *testing.T) {
	a := newKeyArena()
	defer a.close(true)
	n := arenaChunk/MaxKeyLength + 10
	keys := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		k, err := a.alloc()
		if err != nil {
			t.Fatal(err)
		}
		copy(k, fmt.Sprintf("key-%08d", i))
		keys = append(keys, k)
	}
	if len(a.chunks) != 2 {
		t.Fatalf("%d chunks for %d keys", len(a.chunks), n)
	}
	for i, k := range keys {
		if !strings.HasPrefix(string(k), fmt.Sprintf("key-%08d", i)) {
			t.Fatalf("key %d overwritten: %q", i, k)
		}
	}
	free := len(a.free)
	heap := bytes.Repeat([]byte{7}, MaxKeyLength)
	a.release(heap)
	if !bytes.Equal(heap, make([]byte, MaxKeyLength)) || len(a.free) != free {
		t.Fatalf("heap memory: wiped %v, free list %d -> %d", bytes.Equal(heap, make([]byte, MaxKeyLength)), free, len(a.free))
	}
}

// After close, nothing is handed out and releases only wipe; without
// unmap (a call was still in flight) the memory stays mapped and wiped.
func TestArenaClose(t *testing.T) {
	a := newKeyArena()
	k, err := a.alloc()
	if err != nil {
		t.Fatal(err)
	}
	copy(k, "secret")
	a.close(false)
	if !bytes.Equal(k, make([]byte, MaxKeyLength)) {
		t.Fatal("close did not wipe a slot in use")
	}
	copy(k, "late") // a late write must not fault
	a.release(k)
	if !bytes.Equal(k, make([]byte, MaxKeyLength)) || len(a.free) != 0 {
		t.Fatal("a release after close kept the slot or did not wipe it")
	}
	if _, err := a.alloc(); err != errArenaClosed {
		t.Fatalf("alloc after close = %v", err)
	}
}

// An Open that fails gives its key memory back (it used to keep the
// first chunk mapped for good).
func TestOpenFailureReleasesKeyMemory(t *testing.T) {
	m := New(Config{Store: keyfile.New(filepath.Join(t.TempDir(), "missing")), Log: nopLog{}})
	if err := m.Open(); err == nil {
		t.Fatal("Open of a missing directory succeeded")
	}
	m.arena.mu.Lock()
	defer m.arena.mu.Unlock()
	if len(m.arena.chunks) != 0 || !m.arena.closed {
		t.Fatalf("after a failed Open: %d chunks mapped, closed %v", len(m.arena.chunks), m.arena.closed)
	}
}

type nopLog struct{}

func (nopLog) Note(string)          {}
func (nopLog) Warning(string)       {}
func (nopLog) Error(string)         {}
func (nopLog) KMSError(string)      {}
func (nopLog) ClientError(string)   {}
func (nopLog) ClientWarning(string) {}
