package mock

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/kmserr"
)

// Operation names, as KMS spells them.
const (
	OpGenerate = "GenerateDataKeyWithoutPlaintext"
	OpDecrypt  = "Decrypt"
)

// PanicCode, as the exception of a fail= fault, makes the operation panic
// instead of returning an error.
const PanicCode = "Panic"

// blobMagic starts every blob the mock makes.
var blobMagic = []byte("AKMMOCK1")

// Error is a KMS service error: an exception name and a message, as the
// AWS SDK reports them (ErrorCode/ErrorMessage, like smithy.APIError).
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string        { return fmt.Sprintf("api error %s: %s", e.Code, e.Message) }
func (e *Error) ErrorCode() string    { return e.Code }
func (e *Error) ErrorMessage() string { return e.Message }

// KMS is the fake. The zero value is not usable; call New. Its methods
// are safe for concurrent use.
type KMS struct {
	mu        sync.Mutex
	faults    *Faults
	calls     map[string]int
	throttled map[string]int
}

// New returns a fake KMS with no faults.
func New() *KMS {
	return &KMS{faults: &Faults{}, calls: make(map[string]int), throttled: make(map[string]int)}
}

// SetFaults replaces the fault state (counters start again).
func (k *KMS) SetFaults(f *Faults) {
	if f == nil {
		f = &Faults{}
	}
	k.mu.Lock()
	k.faults = f.clone()
	k.mu.Unlock()
}

// Calls returns how many times op was called (failed calls included).
func (k *KMS) Calls(op string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls[op]
}

// Attempts reports the calls of op and how many were throttled, as
// kmsbackend.Client does; the mock makes no retries.
func (k *KMS) Attempts(op string) (attempts, retries, throttled int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return int64(k.calls[op]), 0, int64(k.throttled[op])
}

// begin counts the call, then applies latency and injected failures.
func (k *KMS) begin(ctx context.Context, op, cmk string) error {
	k.mu.Lock()
	k.calls[op]++
	delay := k.faults.delayFor(op)
	fail := k.faults.take(op)
	if fail != nil && kmserr.New(op, fail).Throttled() {
		k.throttled[op]++
	}
	disabled := cmk != "" && k.faults.Disabled[cmk]
	k.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("mock %s: %w", op, ctx.Err())
		}
	}
	if e, ok := fail.(*Error); ok && e.Code == PanicCode {
		// For tests of the plugin's recover paths: a panic in Go must
		// never take mariadbd down.
		panic("mock KMS: injected panic in " + op)
	}
	if fail != nil {
		return fail
	}
	if disabled {
		return &Error{Code: "DisabledException", Message: keyARN(cmk) + " is disabled."}
	}
	return nil
}

func keyARN(cmk string) string {
	return "arn:aws:kms:us-east-1:000000000000:key/" + cmk
}

// GenerateDataKeyWithoutPlaintext returns a new data key sealed under
// masterKeyID. keySpec is AES_128 or AES_256. Errors are *kmserr.Error.
func (k *KMS) GenerateDataKeyWithoutPlaintext(ctx context.Context, masterKeyID, keySpec string) ([]byte, error) {
	blob, err := k.generate(ctx, masterKeyID, keySpec)
	return blob, kmserrOrNil(OpGenerate, err)
}

// kmserrOrNil classifies err as the real backend does (a nil error stays
// a nil interface).
func kmserrOrNil(op string, err error) error {
	if err == nil {
		return nil
	}
	return kmserr.New(op, err)
}

func (k *KMS) generate(ctx context.Context, masterKeyID, keySpec string) ([]byte, error) {
	if err := k.begin(ctx, OpGenerate, masterKeyID); err != nil {
		return nil, err
	}
	var n int
	switch keySpec {
	case "AES_128":
		n = 16
	case "AES_256":
		n = 32
	default:
		return nil, &Error{Code: "ValidationException", Message: fmt.Sprintf("1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]", keySpec)}
	}
	if masterKeyID == "" || len(masterKeyID) > 255 {
		return nil, &Error{Code: "ValidationException", Message: "1 validation error detected: Value at 'keyId' failed to satisfy constraint: Member must have length between 1 and 2048"}
	}
	k.mu.Lock()
	fixed := k.faults.DataKey
	k.mu.Unlock()
	key := make([]byte, n)
	defer clear(key)
	if len(fixed) > 0 {
		copy(key, fixed) // the test's chosen plaintext, zero-padded
	} else if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("mock %s: %w", OpGenerate, err)
	}
	return Seal(masterKeyID, key)
}

// Decrypt opens a blob made by GenerateDataKeyWithoutPlaintext into dst
// and returns the key's length (the keys.KMS contract). Errors are
// *kmserr.Error.
func (k *KMS) Decrypt(ctx context.Context, blob, dst []byte) (int, error) {
	cmk, _, _ := parseBlob(blob)
	if err := k.begin(ctx, OpDecrypt, cmk); err != nil {
		return 0, kmserr.New(OpDecrypt, err)
	}
	n, err := OpenInto(blob, dst)
	return n, kmserrOrNil(OpDecrypt, err)
}

var errInvalidCiphertext = &Error{Code: "InvalidCiphertextException", Message: ""}

// Seal wraps plaintext under the mock key of cmk.
func Seal(cmk string, plaintext []byte) ([]byte, error) {
	if len(cmk) == 0 || len(cmk) > 255 {
		return nil, errors.New("mock seal: master key id must have 1 to 255 bytes")
	}
	aead, err := wrapper(cmk)
	if err != nil {
		return nil, err
	}
	hdr := append(append([]byte{}, blobMagic...), byte(len(cmk)))
	hdr = append(hdr, cmk...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("mock seal: %w", err)
	}
	out := append(hdr, nonce...)
	return aead.Seal(out, nonce, plaintext, hdr), nil
}

// OpenInto unwraps a blob made by Seal straight into dst (no other copy
// of the key is made) and returns the key's length. A key longer than dst
// is an error.
func OpenInto(blob, dst []byte) (int, error) {
	cmk, hdrLen, ok := parseBlob(blob)
	if !ok {
		return 0, errInvalidCiphertext
	}
	aead, err := wrapper(cmk)
	if err != nil {
		return 0, err
	}
	rest := blob[hdrLen:]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return 0, errInvalidCiphertext
	}
	if n := len(rest) - aead.NonceSize() - aead.Overhead(); n > len(dst) {
		return 0, fmt.Errorf("mock Decrypt: a key of %d bytes does not fit in %d", n, len(dst))
	}
	pt, err := aead.Open(dst[:0], rest[:aead.NonceSize()], rest[aead.NonceSize():], blob[:hdrLen])
	if err != nil {
		return 0, errInvalidCiphertext
	}
	return len(pt), nil
}

// Open unwraps a blob made by Seal; anything else is
// InvalidCiphertextException, as KMS answers.
func Open(blob []byte) ([]byte, error) {
	cmk, hdrLen, ok := parseBlob(blob)
	if !ok {
		return nil, errInvalidCiphertext
	}
	aead, err := wrapper(cmk)
	if err != nil {
		return nil, err
	}
	rest := blob[hdrLen:]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, errInvalidCiphertext
	}
	pt, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], blob[:hdrLen])
	if err != nil {
		return nil, errInvalidCiphertext
	}
	return pt, nil
}

// BlobMasterKey names the master key a mock blob was sealed under.
func BlobMasterKey(blob []byte) (string, bool) {
	cmk, _, ok := parseBlob(blob)
	return cmk, ok
}

func parseBlob(blob []byte) (cmk string, hdrLen int, ok bool) {
	if len(blob) < len(blobMagic)+2 || !bytes.Equal(blob[:len(blobMagic)], blobMagic) {
		return "", 0, false
	}
	n := int(blob[len(blobMagic)])
	hdrLen = len(blobMagic) + 1 + n
	if n == 0 || len(blob) < hdrLen {
		return "", 0, false
	}
	return string(blob[len(blobMagic)+1 : hdrLen]), hdrLen, true
}

func wrapper(cmk string) (cipher.AEAD, error) {
	sum := sha256.Sum256([]byte("aws_key_management mock wrapping key\x00" + cmk))
	block, err := aes.NewCipher(sum[:])
	if err != nil {
		return nil, fmt.Errorf("mock wrapping key: %w", err)
	}
	return cipher.NewGCM(block)
}
