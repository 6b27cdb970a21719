// Package lockedmem holds plaintext keys outside the Go heap: fixed-size
// slots in anonymous mappings that are mlock()ed (never swapped) and
// MADV_DONTDUMP (left out of core dumps), wiped when given back. The key
// manager keeps every loaded key in one; the recovery bundle and the
// operator tool use it for the keys they handle.
package lockedmem
