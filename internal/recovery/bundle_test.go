package recovery_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/mariadb-go/aws_key_management/internal/keys"
	"github.com/mariadb-go/aws_key_management/internal/kmserr"
	"github.com/mariadb-go/aws_key_management/internal/recovery"
)

var _ keys.KMS = (*recovery.Bundle)(nil)

func entries(t *testing.T, n int) []recovery.Entry {
	t.Helper()
	var out []recovery.Entry
	for i := 0; i < n; i++ {
		blob := make([]byte, 150+i)
		key := make([]byte, 16+16*(i%2))
		rand.Read(blob)
		rand.Read(key)
		out = append(out, recovery.Entry{ID: uint32(1 + i/3), Version: uint32(1 + i%3), Blob: blob, Key: key})
	}
	return out
}

func identity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func seal(t *testing.T, id *age.X25519Identity, es []recovery.Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	meta := recovery.Meta{Created: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Host: "db 1", Source: "/var/lib/mysql"}
	if err := recovery.Seal(&buf, []age.Recipient{id.Recipient()}, meta, es); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A sealed bundle opens with its recovery key to the same entries, and
// serves Decrypt of each blob; it never shows a key in the clear.
func TestSealOpen(t *testing.T) {
	id := identity(t)
	es := entries(t, 10)
	sealed := seal(t, id, es)
	for _, e := range es {
		if bytes.Contains(sealed, e.Key) || bytes.Contains(sealed, e.Blob[:32]) {
			t.Fatal("the sealed bundle holds a key or blob in the clear")
		}
	}
	b, err := recovery.Open(bytes.NewReader(sealed), []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(b.Entries) != len(es) || b.Host != "db_1" || b.Source != "/var/lib/mysql" || !b.Created.Equal(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("opened %d entries, meta %+v", len(b.Entries), b.Meta)
	}
	dst := make([]byte, 32)
	for _, e := range es {
		n, err := b.Decrypt(context.Background(), e.Blob, dst)
		if err != nil || !bytes.Equal(dst[:n], e.Key) {
			t.Fatalf("Decrypt of key %d.%d: %v", e.ID, e.Version, err)
		}
	}
	_, err = b.Decrypt(context.Background(), []byte("another blob"), dst)
	var ke *kmserr.Error
	if !errors.As(err, &ke) || ke.Code != "NotInRecoveryBundle" || ke.Transient() {
		t.Fatalf("Decrypt of an unknown blob: %v", err)
	}
	_, err = b.GenerateDataKeyWithoutPlaintext(context.Background(), "k", "AES_128")
	if !errors.As(err, &ke) || ke.Code != "RecoveryMode" {
		t.Fatalf("Generate: %v", err)
	}
	b.Close()
	if _, err := b.Decrypt(context.Background(), es[0].Blob, dst); err == nil {
		t.Fatal("Decrypt after Close")
	}
}

// What is not a good bundle is refused, saying why.
func TestOpenRefuses(t *testing.T) {
	id := identity(t)
	sealed := seal(t, id, entries(t, 4))
	other := identity(t)
	cases := map[string]struct {
		data []byte
		ids  []age.Identity
		want string
	}{
		"another recovery key": {sealed, []age.Identity{other}, "sealed for another recovery key"},
		"cut short":            {sealed[:len(sealed)-20], []age.Identity{id}, "opening the recovery bundle"},
		"changed":              {flip(sealed, len(sealed)-30), []age.Identity{id}, "opening the recovery bundle"},
		"not age at all":       {[]byte("hello"), []age.Identity{id}, "opening the recovery bundle"},
	}
	for name, c := range cases {
		b, err := recovery.Open(bytes.NewReader(c.data), c.ids)
		if err == nil {
			b.Close()
			t.Errorf("%s: opened", name)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

// Contents that are well sealed but not a bundle of ours.
func TestOpenRefusesBadContents(t *testing.T) {
	id := identity(t)
	key := strings.Repeat("A", 22) + "=="
	head := recovery.Header + "\ncreated 2026-12-01T10:00:00Z\nhost h\nsource s\n"
	cases := map[string][2]string{
		"other header":   {"hello\ncreated x\nhost h\nsource s\nend 0\n", "not a recovery bundle of this plugin"},
		"no end line":    {head + "key 1 1 YmxvYg== " + key + "\n", "cut short (no end line)"},
		"wrong count":    {head + "key 1 1 YmxvYg== " + key + "\nend 2\n", "it holds 1 key versions"},
		"twice":          {head + "key 1 1 YmxvYg== " + key + "\nkey 1 1 YmxvYg== " + key + "\nend 2\n", "key 1, version 1 twice"},
		"short key":      {head + "key 1 1 YmxvYg== AAAA\nend 1\n", "a bad key (16 or 32 bytes, base64)"},
		"key id 0":       {head + "key 0 1 YmxvYg== " + key + "\nend 1\n", "not a key id and version"},
		"after the end":  {head + "end 0\nkey 1 1 YmxvYg== " + key + "\n", "text after the end line"},
		"bad created":    {recovery.Header + "\ncreated yesterday\nhost h\nsource s\nend 0\n", "line 2"},
		"a long key":     {head + "key 1 1 YmxvYg== " + strings.Repeat("A", 64) + "\nend 1\n", "a key longer than 32 bytes"},
		"missing fields": {head + "key 1 1 YmxvYg==\nend 1\n", "want: key <id> <version> <blob> <key>"},
	}
	for name, c := range cases {
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, id.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(c[0]))
		w.Close()
		b, err := recovery.Open(&buf, []age.Identity{id})
		if err == nil {
			b.Close()
			t.Errorf("%s: opened", name)
		} else if !strings.Contains(err.Error(), c[1]) {
			t.Errorf("%s: %v, want %q", name, err, c[1])
		}
	}
	// The same header and one good line open: the cases above fail for
	// their own reason.
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, id.Recipient())
	w.Write([]byte(head + "key 1 1 YmxvYg== " + key + "\nend 1\n"))
	w.Close()
	b, err := recovery.Open(&buf, []age.Identity{id})
	if err != nil {
		t.Fatalf("the good case: %v", err)
	}
	b.Close()
}

// Seal refuses entries that would not open again.
func TestSealRefuses(t *testing.T) {
	id := identity(t)
	for name, e := range map[string]recovery.Entry{
		"key id 0":   {ID: 0, Version: 1, Blob: []byte("b"), Key: make([]byte, 16)},
		"empty blob": {ID: 1, Version: 1, Key: make([]byte, 16)},
		"24 bytes":   {ID: 1, Version: 1, Blob: []byte("b"), Key: make([]byte, 24)},
	} {
		err := recovery.Seal(&bytes.Buffer{}, []age.Recipient{id.Recipient()}, recovery.Meta{}, []recovery.Entry{e})
		if err == nil {
			t.Errorf("%s: sealed", name)
		}
	}
	if err := recovery.Seal(&bytes.Buffer{}, nil, recovery.Meta{}, nil); err == nil || !strings.Contains(err.Error(), "no recipient") {
		t.Errorf("no recipients: %v", err)
	}
}

// OpenFiles reads an identity file as age-keygen writes it and names the
// file that is missing.
func TestOpenFiles(t *testing.T) {
	id := identity(t)
	dir := t.TempDir()
	bundle, idFile := filepath.Join(dir, "keys.age"), filepath.Join(dir, "recovery.key")
	os.WriteFile(bundle, seal(t, id, entries(t, 3)), 0o600)
	os.WriteFile(idFile, []byte("# created: 2026-12-01\n# public key: "+id.Recipient().String()+"\n"+id.String()+"\n"), 0o600)
	b, err := recovery.OpenFiles(bundle, idFile)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := recovery.OpenFiles(bundle, filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing identity file: %v", err)
	}
	if _, err := recovery.OpenFiles(filepath.Join(dir, "none.age"), idFile); err == nil || !strings.Contains(err.Error(), "none.age") {
		t.Errorf("missing bundle: %v", err)
	}
}
