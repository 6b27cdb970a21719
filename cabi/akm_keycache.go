package cabi

/*
#include "akm_keycache.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// KeyCache is the C copy of the loaded keys that get_latest_key_version and
// get_key read without entering Go (akm_keycache.c). It implements the key
// manager's Cache interface.
type KeyCache struct{}

// OpenKeyCache maps the cache. locked is false when mlock was refused
// (RLIMIT_MEMLOCK); the keys are then still excluded from core dumps.
func OpenKeyCache() (cache KeyCache, locked bool, err error) {
	var l C.int
	if rc, errno := C.akm_cache_open(&l); rc != 0 {
		return KeyCache{}, false, fmt.Errorf("mapping the C key cache: %w", errno)
	}
	return KeyCache{}, l != 0, nil
}

// Put publishes a loaded key.
func (KeyCache) Put(id, ver uint32, key []byte) {
	if len(key) == 0 {
		return
	}
	// The C side copies; the Go slice is not kept.
	C.akm_cache_put(C.uint(id), C.uint(ver), (*C.uchar)(unsafe.Pointer(&key[0])), C.uint(len(key)))
}

// SetLatest publishes the latest version of a key id.
func (KeyCache) SetLatest(id, ver uint32) { C.akm_cache_set_latest(C.uint(id), C.uint(ver)) }

// Reset wipes the cache (plugin deinit).
func (KeyCache) Reset() { C.akm_cache_close() }
