package keyops

import (
	"fmt"
	"syscall"
)

// madvDontDump is MADV_DONTDUMP (Linux): package syscall does not name it.
const madvDontDump = 16

// keyMemory holds the plaintext keys of one operation: one anonymous
// mapping, mlock()ed (never swapped) when the limit allows and left out of
// core dumps, cut into fixed slots; every slot is wiped when given back
// and the whole mapping is wiped before it is unmapped. The KMS client
// writes a key straight into a slot (see kmsbackend's plaintext sink), so
// the tool makes no other copy.
type keyMemory struct {
	mem   []byte
	slots chan []byte
	// lockErr says why mlock failed (RLIMIT_MEMLOCK), nil if locked.
	lockErr error
}

func newKeyMemory(slots, size int) (*keyMemory, error) {
	page := syscall.Getpagesize()
	n := (slots*size + page - 1) / page * page
	mem, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("mapping memory for keys: %w", err)
	}
	m := &keyMemory{mem: mem, slots: make(chan []byte, slots)}
	if err := syscall.Madvise(mem, madvDontDump); err != nil {
		syscall.Munmap(mem)
		return nil, fmt.Errorf("excluding key memory from core dumps: %w", err)
	}
	if err := syscall.Mlock(mem); err != nil {
		m.lockErr = fmt.Errorf("locking key memory: %w", err)
	}
	for i := 0; i < slots; i++ {
		m.slots <- mem[i*size : (i+1)*size : (i+1)*size]
	}
	return m, nil
}

func (m *keyMemory) get() []byte { return <-m.slots }

func (m *keyMemory) put(slot []byte) {
	clear(slot)
	m.slots <- slot
}

// close wipes and unmaps the memory; no slot may be in use.
func (m *keyMemory) close() {
	clear(m.mem)
	syscall.Munmap(m.mem)
}
