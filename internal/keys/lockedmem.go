package keys

import (
	"errors"
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

// errArenaClosed: the plugin stopped; no key may be stored any more.
var errArenaClosed = errors.New("key memory is closed")

// keyArena holds plaintext keys outside the Go heap, in anonymous
// mappings that are mlock()ed (never written to swap) and MADV_DONTDUMP
// (left out of core dumps). Keys get fixed 32-byte slots: the KMS backend
// writes a key straight into one (alloc), so no other copy of it is made
// by the plugin; a slot given back (release) is wiped at once. The garbage
// collector never moves or copies them.
type keyArena struct {
	mu     sync.Mutex
	chunks [][]byte
	free   [][]byte // wiped slots
	closed bool
	// locked is false when mlock failed (RLIMIT_MEMLOCK); lockErr says why.
	locked  bool
	lockErr error
}

func newKeyArena() *keyArena { return &keyArena{locked: true} }

// alloc returns a wiped slot of MaxKeyLength bytes.
func (a *keyArena) alloc() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errArenaClosed
	}
	if len(a.free) == 0 {
		if err := a.grow(); err != nil {
			return nil, err
		}
	}
	slot := a.free[len(a.free)-1]
	a.free = a.free[:len(a.free)-1]
	return slot, nil
}

// grow maps one more chunk. Called with a.mu held.
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

// release wipes a slot (or any key of this arena, by its capacity) and
// makes it free. A key that is not from the arena is only wiped.
func (a *keyArena) release(key []byte) {
	if cap(key) == 0 {
		return
	}
	slot := key[:cap(key)]
	wipe(slot)
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed && cap(slot) == MaxKeyLength && a.owns(slot) {
		a.free = append(a.free, slot)
	}
}

// owns reports whether slot lies in one of the chunks. Called with a.mu
// held.
func (a *keyArena) owns(slot []byte) bool {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(slot)))
	for _, c := range a.chunks {
		start := uintptr(unsafe.Pointer(unsafe.SliceData(c)))
		if p >= start && p < start+uintptr(len(c)) {
			return true
		}
	}
	return false
}

// close wipes every chunk and stores nothing more. With unmap, the chunks
// are unmapped; without (a call that may still write a key into a slot is
// in flight), they stay mapped, wiped, so that a late write cannot fault:
// the late caller wipes its slot itself when it finds the manager closed.
func (a *keyArena) close(unmap bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for _, c := range a.chunks {
		wipe(c)
		if unmap {
			syscall.Munmap(c)
		}
	}
	a.chunks, a.free = nil, nil
}
