package kmstest

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// FuzzDecryptBlob feeds arbitrary bytes to Decrypt, both as the blob and
// as the whole request body: no panic, and nothing but a real blob opens.
func FuzzDecryptBlob(f *testing.F) {
	s := New(Config{Seed: []byte("fuzz")})
	s.CreateKey("k")
	s.CreateKey("k2")
	k := s.keys["k"]
	blob, err := seal(k.aead, "k", []byte("plaintext"), nil)
	if err != nil {
		f.Fatal(err)
	}
	withCtx, _ := seal(k.aead, "k", []byte("plaintext"), map[string]string{"a": "b"})
	f.Add(blob)
	f.Add(withCtx)
	f.Add([]byte("EMUKMS01"))
	f.Add([]byte("EMUKMS01\x01k"))
	f.Add(append([]byte("EMUKMS01\xffk"), make([]byte, 40)...))
	f.Add([]byte(`{"CiphertextBlob":"RU1VS01TMDE="}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		body := []byte(`{"CiphertextBlob":"` + base64.StdEncoding.EncodeToString(b) + `"}`)
		out, aerr := opDecrypt(s, &reqInfo{}, body)
		if aerr == nil {
			pt := out.(map[string]any)["Plaintext"].([]byte)
			// Only blobs sealed above can open (a fuzz worker seals its own).
			if !bytes.HasPrefix(b, []byte("EMUKMS01\x01k")) || !bytes.Equal(pt, []byte("plaintext")) {
				t.Fatalf("forged blob %x opened to %q", b, pt)
			}
		} else if aerr.status != 400 || aerr.code == "" {
			t.Fatalf("error %+v", aerr)
		}
		opDecrypt(s, &reqInfo{}, b)
		opReEncrypt(s, &reqInfo{}, b)
		blobKeyID(b)
	})
}
