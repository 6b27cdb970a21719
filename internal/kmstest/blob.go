package kmstest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sort"
)

// A ciphertext blob names its CMK and is sealed under that CMK's
// material:
//
//	"EMUKMS01" | len(key id) (1 byte) | key id | nonce (12) | AES-256-GCM(plaintext) with tag
//
// The GCM additional data is the header (magic, length, key id) followed
// by a canonical encoding of the encryption context, so a changed key id,
// context or byte anywhere fails to open.
var blobMagic = []byte("EMUKMS01")

const (
	nonceSize = 12
	tagSize   = 16
)

// material is the AEAD of a CMK: AES-256-GCM keyed with
// HMAC-SHA256(seed, key id).
func material(seed []byte, keyID string) cipher.AEAD {
	m := hmac.New(sha256.New, seed)
	m.Write([]byte(keyID))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic("kmstest: " + err.Error()) // a 32-byte key cannot fail
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("kmstest: " + err.Error())
	}
	return aead
}

// encodeContext is a canonical, unambiguous encoding of an encryption
// context: count, then each key and value length-prefixed, keys sorted.
// An empty context encodes to nothing.
func encodeContext(ctx map[string]string) []byte {
	if len(ctx) == 0 {
		return nil
	}
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := binary.BigEndian.AppendUint32(nil, uint32(len(keys)))
	for _, k := range keys {
		b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(ctx[k])))
		b = append(b, ctx[k]...)
	}
	return b
}

func blobHeader(keyID string) []byte {
	h := append([]byte{}, blobMagic...)
	h = append(h, byte(len(keyID)))
	return append(h, keyID...)
}

// seal makes a blob of plaintext under the CMK keyID.
func seal(aead cipher.AEAD, keyID string, plaintext []byte, ctx map[string]string) ([]byte, error) {
	hdr := blobHeader(keyID)
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	aad := append(append([]byte{}, hdr...), encodeContext(ctx)...)
	out := append(hdr, nonce...)
	return aead.Seal(out, nonce, plaintext, aad), nil
}

// blobKeyID returns the CMK a blob names, or false if it is no blob of
// this emulator.
func blobKeyID(blob []byte) (string, bool) {
	if len(blob) < len(blobMagic)+2 || !bytes.Equal(blob[:len(blobMagic)], blobMagic) {
		return "", false
	}
	n := int(blob[len(blobMagic)])
	hdrLen := len(blobMagic) + 1 + n
	if n == 0 || len(blob) < hdrLen+nonceSize+tagSize {
		return "", false
	}
	return string(blob[len(blobMagic)+1 : hdrLen]), true
}

// open returns the plaintext of a blob made by seal under aead with the
// same context, or false.
func open(aead cipher.AEAD, blob []byte, ctx map[string]string) ([]byte, bool) {
	keyID, ok := blobKeyID(blob)
	if !ok {
		return nil, false
	}
	hdrLen := len(blobMagic) + 1 + len(keyID)
	aad := append(append([]byte{}, blob[:hdrLen]...), encodeContext(ctx)...)
	nonce := blob[hdrLen : hdrLen+nonceSize]
	pt, err := aead.Open(nil, nonce, blob[hdrLen+nonceSize:], aad)
	if err != nil {
		return nil, false
	}
	return pt, true
}
