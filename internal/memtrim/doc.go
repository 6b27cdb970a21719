// Package memtrim gives back to the kernel the pages of a loaded library
// that a long-running host does not need to keep resident: after the
// plugin's start, the clean (never written) pages of its code and read-only
// data are dropped from the process's page tables; the ones still used
// fault back in from the page cache.
package memtrim
