// Command plugin is built with -buildmode=c-shared into
// aws_key_management.so. It holds no logic of its own: it registers with
// the ABI layer (cabi) an implementation that wires the key manager
// (internal/keys) to the key store (internal/keyfile) and to a KMS: the
// AWS client (internal/kmsbackend), or in builds tagged "mock" the
// in-process fake (internal/mock) when aws_key_management_mock is ON.
package main
