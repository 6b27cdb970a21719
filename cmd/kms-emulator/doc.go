// Command kms-emulator runs internal/kmstest's AWS KMS emulator on a
// loopback address, for tests whose client runs in another process (the
// AWS CLI, the plugin inside mariadbd).
//
//	kms-emulator -listen 127.0.0.1:0 -port-file DIR/port \
//	    -access-key-id AKID -secret-access-key SECRET -key k1=alias/a,alias/b
//
// It refuses non-loopback addresses, writes "127.0.0.1:PORT" to the port
// file (atomically) once it listens, logs one line per request, and stops
// on SIGTERM or SIGINT, or by itself after -max-lifetime (default 2h).
// -quota Q makes it one account's shared request quota (Q requests/s
// across all clients; beyond it ThrottlingException "Rate exceeded.", as
// AWS KMS), and -latency D holds every other answer for D: a fleet of
// servers restarting against one region (make bench). POST
// /_emulator/limits changes both at run time.
// The control endpoints under /_emulator/ (see internal/kmstest) take no
// signature: never expose the emulator beyond loopback. STS
// GetSessionToken is on the same address (point AWS_ENDPOINT_URL_STS at
// it); -mfa-device SERIAL=CODE adds a virtual MFA device and
// -require-mfa makes the key policy demand MFA session credentials.
package main
