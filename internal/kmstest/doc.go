// Package kmstest is a small, faithful AWS KMS emulator (JSON 1.1 protocol
// with real SigV4 verification, authenticated ciphertext blobs and the
// fault language of internal/mock) for loopback tests against real KMS
// clients such as aws-sdk-go-v2 and the AWS CLI.
//
// Besides the KMS API on "/", the same handler answers control requests
// under "/_emulator/" (faults, call counts, credentials, region, keys).
// Those need no signature: the emulator is for loopback tests only and
// protects nothing; its key material comes from a seed, not from an HSM.
package kmstest
