// Package kmstest is a small, faithful AWS KMS emulator (JSON 1.1 protocol
// with real SigV4 verification, authenticated ciphertext blobs and the
// fault language of internal/mock) for loopback tests against real KMS
// clients such as aws-sdk-go-v2 and the AWS CLI. The same handler answers
// STS GetSessionToken (Query protocol, with virtual MFA devices): its
// temporary credentials work on the KMS side until they expire, and a key
// policy switch can require MFA-derived ones for the cryptographic calls.
//
// Besides the KMS API on "/", the same handler answers control requests
// under "/_emulator/" (faults, call counts, credentials, region, keys, MFA devices,
// the MFA policy, session expiry).
// Those need no signature: the emulator is for loopback tests only and
// protects nothing; its key material comes from a seed, not from an HSM.
package kmstest
