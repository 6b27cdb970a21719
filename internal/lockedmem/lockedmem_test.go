package lockedmem

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
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
func (a *Arena) contains(b []byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(b) > 0 && a.owns(b)
}

// Keys live in a mapping marked "dd" (MADV_DONTDUMP: not in core dumps)
// and "lo" (mlock: never swapped) when locking is allowed; a released
// slot is wiped and reused.
func TestArenaDontDumpLockedWiped(t *testing.T) {
	a := New()
	defer a.Close(true)
	key, err := a.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != SlotSize || !bytes.Equal(key, make([]byte, SlotSize)) || !a.contains(key) {
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
	a.Release(key[:16]) // a key cut to its length gives back the whole slot
	if !bytes.Equal(key, make([]byte, SlotSize)) {
		t.Fatal("released slot not wiped")
	}
	again, err := a.Alloc()
	if err != nil || &again[0] != &key[0] {
		t.Fatalf("released slot not reused (%v)", err)
	}
}

// The arena grows past one chunk; memory that is not from the arena is
// wiped on release but never becomes a slot.
func TestArenaGrowsAndReleases(t *testing.T) {
	a := New()
	defer a.Close(true)
	n := chunkSize/SlotSize + 10
	keys := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		k, err := a.Alloc()
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
	heap := bytes.Repeat([]byte{7}, SlotSize)
	a.Release(heap)
	if !bytes.Equal(heap, make([]byte, SlotSize)) || len(a.free) != free {
		t.Fatalf("heap memory: wiped %v, free list %d -> %d", bytes.Equal(heap, make([]byte, SlotSize)), free, len(a.free))
	}
}

// After close, nothing is handed out and releases only wipe; without
// unmap (a call was still in flight) the memory stays mapped and wiped.
func TestArenaClose(t *testing.T) {
	a := New()
	k, err := a.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	copy(k, "secret")
	a.Close(false)
	if !bytes.Equal(k, make([]byte, SlotSize)) {
		t.Fatal("close did not wipe a slot in use")
	}
	copy(k, "late") // a late write must not fault
	a.Release(k)
	if !bytes.Equal(k, make([]byte, SlotSize)) || len(a.free) != 0 {
		t.Fatal("a release after close kept the slot or did not wipe it")
	}
	if _, err := a.Alloc(); err != ErrClosed {
		t.Fatalf("alloc after close = %v", err)
	}
}
