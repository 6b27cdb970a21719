// Package keys serves MariaDB's key requests: it keeps the plaintext data
// keys the server has asked for, generates version 1 of a new key id and
// new versions on rotation, and unwraps stored versions on demand.
//
// It is the plugin's logic with neither C nor AWS in it: the KMS is the
// narrow KMS interface declared here, key files come from
// internal/keyfile, and messages go to a Logger the ABI layer provides.
//
// Concurrency: a loaded key is served under a read lock that is never held
// across a KMS call or file I/O. Slow work (generate, unwrap) takes a lock
// of its own for that one key id or key version, so concurrent first uses
// of a key make one KMS call and other keys are not delayed.
package keys
