// Package mock is an in-process fake of the two KMS calls the plugin
// makes, for the mock build (aws_key_management_mock=ON) and for tests.
//
// Unlike upstream's mock, whose "wrapped" key file is the plaintext key,
// this one seals each data key with AES-256-GCM under a wrapping key
// derived from the master key id, so key files never hold a plaintext key
// even in tests. The wrapping key is derived from a public constant: the
// mock protects nothing and must never be used for real data.
//
// Faults for tests are set with a small language (see ParseFaults): a
// disabled master key, an operation failing N times or for good with a
// named KMS exception, added latency, and a fixed plaintext for new keys.
package mock
