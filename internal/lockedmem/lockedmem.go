package lockedmem

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

// SlotSize is the size of a slot: MY_AES_MAX_KEY_LENGTH, the largest key
// the server takes.
const SlotSize = 32

// chunkSize is the size of one mapping: 2048 slots.
const chunkSize = 64 << 10

// ErrClosed: the arena was closed; no key may be stored any more.
var ErrClosed = errors.New("key memory is closed")

// Arena holds plaintext keys outside the Go heap, in anonymous mappings
// that are mlock()ed (never written to swap) and MADV_DONTDUMP (left out
// of core dumps). Keys get fixed SlotSize slots: the KMS backend writes a
// key straight into one (Alloc), so no other copy of it is made; a slot
// given back (Release) is wiped at once. The garbage collector never
// moves or copies them. Its methods are safe for concurrent use.
type Arena struct {
	slot   int // bytes per slot
	mu     sync.Mutex
	chunks [][]byte
	free   [][]byte // wiped slots
	closed bool
	// locked is false when mlock failed (RLIMIT_MEMLOCK); lockErr says why.
	locked  bool
	lockErr error
}

// New returns an empty Arena of SlotSize slots; it maps memory when a
// slot is first asked for (or on Grow).
func New() *Arena { return NewSized(SlotSize) }

// NewSized returns an empty Arena whose slots have size bytes (at most
// 4096).
func NewSized(size int) *Arena {
	if size <= 0 || size > 4096 {
		panic(fmt.Sprintf("lockedmem: slot size %d out of 1..4096", size))
	}
	return &Arena{slot: size, locked: true}
}

// Alloc returns a wiped slot.
func (a *Arena) Alloc() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
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

// Grow maps one more chunk now, so that Locked can tell at once whether
// mlock is allowed.
func (a *Arena) Grow() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	return a.grow()
}

// Locked tells whether the memory is mlock()ed (and some is mapped); when
// mlock was refused, err says why (typically RLIMIT_MEMLOCK).
func (a *Arena) Locked() (locked bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.locked && len(a.chunks) > 0, a.lockErr
}

// grow maps one more chunk. Called with a.mu held.
func (a *Arena) grow() error {
	b, err := syscall.Mmap(-1, 0, chunkSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
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
	for off := 0; off+a.slot <= len(b); off += a.slot {
		a.free = append(a.free, b[off:off+a.slot:off+a.slot])
	}
	return nil
}

// Release wipes a slot (or any key of this arena, by its capacity) and
// makes it free. A key that is not from the arena is only wiped.
func (a *Arena) Release(key []byte) {
	if cap(key) == 0 {
		return
	}
	slot := key[:cap(key)]
	Wipe(slot)
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed && cap(slot) == a.slot && a.owns(slot) {
		a.free = append(a.free, slot)
	}
}

// owns reports whether slot lies in one of the chunks. Called with a.mu
// held.
func (a *Arena) owns(slot []byte) bool {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(slot)))
	for _, c := range a.chunks {
		start := uintptr(unsafe.Pointer(unsafe.SliceData(c)))
		if p >= start && p < start+uintptr(len(c)) {
			return true
		}
	}
	return false
}

// Close wipes every chunk and hands out nothing more. With unmap, the
// chunks are unmapped; without (something that may still write a key into
// a slot is in flight), they stay mapped, wiped, so that a late write
// cannot fault: the late writer must Release its slot, which wipes it.
func (a *Arena) Close(unmap bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for _, c := range a.chunks {
		Wipe(c)
		if unmap {
			syscall.Munmap(c)
		}
	}
	a.chunks, a.free = nil, nil
}

// Wipe zeroes b.
func Wipe(b []byte) { clear(b) }
