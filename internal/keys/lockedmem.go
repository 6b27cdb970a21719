package keys

import (
	"fmt"
	"sync"
	"syscall"
	"unsafe"
)

// madvDontDump is MADV_DONTDUMP from <sys/mman.h> (Linux, every
// architecture); package syscall does not name it.
const madvDontDump = 16

// arenaChunk is the size of one mapping: 2048 keys of up to 32 bytes.
const arenaChunk = 64 << 10

// keyArena holds plaintext keys outside the Go heap, in anonymous
// mappings that are mlock()ed (never written to swap) and MADV_DONTDUMP
// (left out of core dumps). Keys get fixed 32-byte slots; a released slot
// is wiped at once. The garbage collector never moves or copies them.
type keyArena struct {
	mu     sync.Mutex
	chunks [][]byte
	free   [][]byte // wiped slots
	// locked is false when mlock failed (RLIMIT_MEMLOCK); lockErr says why.
	locked  bool
	lockErr error
}

func newKeyArena() *keyArena { return &keyArena{locked: true} }

// store copies key into a slot and wipes the source.
func (a *keyArena) store(key []byte) ([]byte, error) {
	if len(key) > MaxKeyLength {
		return nil, fmt.Errorf("key of %d bytes does not fit a %d-byte slot", len(key), MaxKeyLength)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.free) == 0 {
		if err := a.grow(); err != nil {
			return nil, err
		}
	}
	slot := a.free[len(a.free)-1]
	a.free = a.free[:len(a.free)-1]
	n := copy(slot, key)
	wipe(key)
	return slot[:n:n], nil
}

func (a *keyArena) grow() error {
	b, err := syscall.Mmap(-1, 0, arenaChunk, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return fmt.Errorf("mapping key memory: %w", err)
	}
	if err := syscall.Madvise(b, madvDontDump); err != nil {
		syscall.Munmap(b)
		return fmt.Errorf("excluding key memory from core dumps: %w", err)
	}
	if err := syscall.Mlock(b); err != nil && a.lockErr == nil {
		a.locked, a.lockErr = false, fmt.Errorf("locking key memory: %w", err)
	}
	a.chunks = append(a.chunks, b)
	for off := 0; off+MaxKeyLength <= len(b); off += MaxKeyLength {
		a.free = append(a.free, b[off:off+MaxKeyLength:off+MaxKeyLength])
	}
	return nil
}

// release wipes a slot and makes it free.
func (a *keyArena) release(key []byte) {
	if cap(key) == 0 {
		return
	}
	slot := key[:cap(key)]
	wipe(slot)
	a.mu.Lock()
	a.free = append(a.free, slot)
	a.mu.Unlock()
}

// close wipes and unmaps everything. No slot may be used afterwards.
func (a *keyArena) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.chunks {
		wipe(c)
		syscall.Munmap(c)
	}
	a.chunks, a.free = nil, nil
}

// contains reports whether b lies in the arena (for tests).
func (a *keyArena) contains(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	p := uintptr(unsafe.Pointer(&b[0]))
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.chunks {
		start := uintptr(unsafe.Pointer(&c[0]))
		if p >= start && p < start+uintptr(len(c)) {
			return true
		}
	}
	return false
}
