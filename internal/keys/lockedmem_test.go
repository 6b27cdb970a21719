package keys

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

// Keys live in a mapping marked "dd" (MADV_DONTDUMP: not in core dumps)
// and "lo" (mlock: never swapped) when locking is allowed; the caller's
// copy is wiped, and a released slot is wiped.
func TestArenaDontDumpLockedWiped(t *testing.T) {
	a := newKeyArena()
	defer a.close()
	src := bytes.Repeat([]byte{0xA5}, 32)
	key, err := a.store(src)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, make([]byte, 32)) {
		t.Fatal("the source copy of the key was not wiped")
	}
	if !bytes.Equal(key, bytes.Repeat([]byte{0xA5}, 32)) || !a.contains(key) {
		t.Fatal("stored key wrong or outside the arena")
	}
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
	slot := key[:cap(key)]
	a.release(key)
	if !bytes.Equal(slot, make([]byte, len(slot))) {
		t.Fatal("released slot not wiped")
	}
}

// The arena grows past one chunk and reuses released slots.
func TestArenaGrowsAndReuses(t *testing.T) {
	a := newKeyArena()
	defer a.close()
	n := arenaChunk/MaxKeyLength + 10
	keys := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		k, err := a.store([]byte(fmt.Sprintf("key-%08d", i)))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if len(a.chunks) != 2 {
		t.Fatalf("%d chunks for %d keys", len(a.chunks), n)
	}
	for i, k := range keys {
		if string(k) != fmt.Sprintf("key-%08d", i) {
			t.Fatalf("key %d overwritten: %q", i, k)
		}
	}
	free := len(a.free)
	a.release(keys[0])
	if _, err := a.store([]byte("again")); err != nil || len(a.free) != free {
		t.Fatalf("released slot not reused (free %d -> %d, %v)", free, len(a.free), err)
	}
	if _, err := a.store(make([]byte, 33)); err == nil {
		t.Fatal("a 33-byte key was accepted")
	}
}
