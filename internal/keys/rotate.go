package keys

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/logtext"
)

// RotateAll is the rotate_key value that rotates every key.
const RotateAll = -1

// Rotate implements SET GLOBAL aws_key_management_rotate_key=N: it adds
// version latest+1 of key N, or of every key for RotateAll, at most
// RotateParallel at a time. Unlike upstream, rotating all keys goes on
// past a key that fails and reports each failure. It returns the number
// of keys that could not be rotated.
func (m *Manager) Rotate(n int) int {
	if n == 0 {
		return 0
	}
	if !m.enter() {
		return 1
	}
	defer m.leave()
	if m.cfg.MasterKeyID() == "" {
		m.cfg.Log.ClientWarning("aws_key_management_master_key_id must be set to generate new data keys")
		return 1
	}
	var ids []uint32
	if n == RotateAll {
		ids = m.KeyIDs()
	} else if n > 0 {
		id := uint32(n)
		if _, latest := m.cached(id, 0); latest == 0 {
			m.cfg.Log.ClientWarning(fmt.Sprintf("key %d does not exist", id))
			return 1
		}
		ids = []uint32{id}
	}
	// In parallel, each worker's KMS calls paced by the client's rate
	// like every other. Client messages are collected and given here, in
	// key order: only the calling thread is the statement's.
	results := make([][]string, len(ids))
	var failed atomic.Int32
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(RotateParallel, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if msgs := m.rotateOneSafe(ids[i]); msgs != nil {
					results[i] = msgs
					failed.Add(1)
				}
			}
		}()
	}
	for i := range ids {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for _, msgs := range results {
		for _, msg := range msgs {
			m.cfg.Log.ClientWarning(msg)
		}
	}
	if n == RotateAll && failed.Load() > 0 {
		m.cfg.Log.ClientWarning(fmt.Sprintf("%d of %d keys could not be rotated; they keep their current version", failed.Load(), len(ids)))
	}
	return int(failed.Load())
}

// RotateParallel bounds the keys rotate_key=-1 rotates at once (as the
// start's unwrapping: KMS's per-account quota is shared).
const RotateParallel = 16

// rotateOneSafe is rotateOne with a panic turned into that key's failure.
func (m *Manager) rotateOneSafe(id uint32) (msgs []string) {
	defer func() {
		if r := recover(); r != nil {
			m.cfg.Log.Error(fmt.Sprintf("internal error while rotating key %d: %s", id, logtext.Panic(r)))
			msgs = []string{fmt.Sprintf("key %d was not rotated: internal error", id)}
		}
	}()
	return m.rotateOne(id)
}

// rotateOne adds the next version of a key. It returns nil on success,
// else the client messages that say why not.
func (m *Manager) rotateOne(id uint32) []string {
	mu := m.lock(lockKey{'g', id, 0})
	defer mu.Unlock()
	_, ver := m.cached(id, 0)
	if ver >= keyfile.MaxVersion {
		return []string{fmt.Sprintf("key %d has reached the highest version %d and cannot be rotated", id, ver)}
	}
	if err := m.generate(id, ver+1); err != nil {
		var msgs []string
		if msg := refusedAdvice(id, err); msg != "" {
			msgs = append(msgs, msg)
		}
		if errors.Is(err, keyfile.ErrExists) {
			msgs = append(msgs, fmt.Sprintf("%s already exists and is not replaced; key %d was not rotated", keyfile.Name(id, ver+1), id))
		}
		return append(msgs, fmt.Sprintf("Could not generate datakey for key id= %d, ver= %d", id, ver))
	}
	return nil
}
