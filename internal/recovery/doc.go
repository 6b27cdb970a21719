// Package recovery is the disaster-recovery bundle: every key version of a
// key directory (its wrapped blob and its plaintext key), sealed with age
// for recovery keys an operator keeps apart; and, opened, a KMS backend
// that answers Decrypt from it, so that a server can start and read its
// data on a host with no route to KMS.
package recovery
