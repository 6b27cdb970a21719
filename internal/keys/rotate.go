package keys

import (
	"errors"
	"fmt"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
)

// RotateAll is the rotate_key value that rotates every key.
const RotateAll = -1

// Rotate implements SET GLOBAL aws_key_management_rotate_key=N: it adds
// version latest+1 of key N, or of every key for RotateAll. Unlike
// upstream, rotating all keys goes on past a key that fails and reports
// each failure. It returns the number of keys that could not be rotated.
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
	failed := 0
	for _, id := range ids {
		if !m.rotateOne(id) {
			failed++
		}
	}
	if n == RotateAll && failed > 0 {
		m.cfg.Log.ClientWarning(fmt.Sprintf("%d of %d keys could not be rotated; they keep their current version", failed, len(ids)))
	}
	return failed
}

func (m *Manager) rotateOne(id uint32) bool {
	mu := m.lock(lockKey{'g', id, 0})
	defer mu.Unlock()
	_, ver := m.cached(id, 0)
	if ver >= keyfile.MaxVersion {
		m.cfg.Log.ClientWarning(fmt.Sprintf("key %d has reached the highest version %d and cannot be rotated", id, ver))
		return false
	}
	if err := m.generate(id, ver+1); err != nil {
		if errors.Is(err, keyfile.ErrExists) {
			m.cfg.Log.ClientWarning(fmt.Sprintf("%s already exists and is not replaced; key %d was not rotated", keyfile.Name(id, ver+1), id))
		}
		m.cfg.Log.ClientWarning(fmt.Sprintf("Could not generate datakey for key id= %d, ver= %d", id, ver))
		return false
	}
	return true
}
