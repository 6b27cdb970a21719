package keyops

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/recovery"
)

func recoveryKey(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func openBundle(t *testing.T, path string, id age.Identity) *recovery.Bundle {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := recovery.Open(f, []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// Export seals every key version with its blob; the bundle opens with the
// recovery key to the keys KMS gives; a throttled KMS only slows it down.
func TestExport(t *testing.T) {
	e := newEnv(t)
	e.create(3, 2, "alias/old")
	id := recoveryKey(t)
	out := filepath.Join(t.TempDir(), "keys.age")
	// Six throttled attempts: the SDK's 3 attempts of two calls, which the
	// runner then tries again (one at a time, so that they are the same
	// calls).
	e.srv.SetFaults("fail=Decrypt:ThrottlingException:6")
	res, err := Export(context.Background(), e.dir, e.client, fastRunner(1), []age.Recipient{id.Recipient()}, out, false, NewMeta(e.dir, time.Now()))
	if err != nil || !res.Written || res.Versions != 6 || len(res.Failed) != 0 || res.Throttled < 1 {
		t.Fatalf("Export = %+v, %v", res, err)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("bundle mode: %v %v", st, err)
	}
	b := openBundle(t, out, id)
	if len(b.Entries) != 6 || b.Source != e.dir {
		t.Fatalf("bundle: %d entries from %s", len(b.Entries), b.Source)
	}
	for _, en := range b.Entries {
		name := keyfile.Name(en.ID, en.Version)
		blob, _ := e.store.Read(en.ID, en.Version)
		if !bytes.Equal(en.Key, e.keys[name]) || !bytes.Equal(en.Blob, blob) {
			t.Errorf("%s: the bundle's key or blob differs", name)
		}
	}
	// An existing bundle is not replaced without being told.
	if _, err := Export(context.Background(), e.dir, e.client, fastRunner(4), []age.Recipient{id.Recipient()}, out, false, NewMeta(e.dir, time.Now())); err == nil || !strings.Contains(err.Error(), "--replace") {
		t.Fatalf("a second export over the bundle: %v", err)
	}
}

// One key file that does not unwrap: no bundle at all, and it is named.
func TestExportAllOrNothing(t *testing.T) {
	e := newEnv(t)
	e.create(2, 2, "alias/old")
	if err := os.WriteFile(e.store.Path(2, 3), []byte("a truncated blob"), 0o400); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "keys.age")
	before := e.snapshot()
	res, err := Export(context.Background(), e.dir, e.client, fastRunner(4), []age.Recipient{recoveryKey(t).Recipient()}, out, false, NewMeta(e.dir, time.Now()))
	if err != nil || res.Written || len(res.Failed) != 1 || res.Failed[0].File != "aws-kms-key.2.3" {
		t.Fatalf("Export = %+v, %v", res, err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a bundle was written: %v", err)
	}
	if des, _ := os.ReadDir(filepath.Dir(out)); len(des) != 0 {
		t.Fatalf("left behind: %v", des)
	}
	e.unchanged(before)
}

// Import writes the bundle's blobs back where they are missing, leaves
// the same files alone, and refuses to touch a different one.
func TestImportBlobs(t *testing.T) {
	e := newEnv(t)
	e.create(2, 2, "alias/old")
	id := recoveryKey(t)
	out := filepath.Join(t.TempDir(), "keys.age")
	if _, err := Export(context.Background(), e.dir, e.client, fastRunner(4), []age.Recipient{id.Recipient()}, out, false, NewMeta(e.dir, time.Now())); err != nil {
		t.Fatal(err)
	}
	b := openBundle(t, out, id)
	os.Remove(e.store.Path(1, 2))
	os.Remove(e.store.Path(2, 1))
	res, err := Import(context.Background(), b, e.dir, e.client, ImportOptions{Runner: fastRunner(2)})
	if err != nil || res.Written != 2 || res.Present != 2 || res.Failed != 0 {
		t.Fatalf("Import = %+v, %v", res, err)
	}
	e.checkUnder(arnA)

	// A file of another key under a bundle's name is a failure, untouched.
	os.Remove(e.store.Path(2, 2))
	os.WriteFile(e.store.Path(2, 2), []byte("another key's blob"), 0o400)
	before := e.snapshot()
	res, err = Import(context.Background(), b, e.dir, e.client, ImportOptions{Runner: fastRunner(2)})
	if err != nil || res.Failed != 1 || !strings.Contains(res.Keys[3].Error, "holds another blob") {
		t.Fatalf("Import over another file = %+v, %v", res, err)
	}
	e.unchanged(before)
}

// Import --to wraps each key under another KMS key (a disaster-recovery
// account): the new files unwrap to the same keys under that key, and the
// old KMS key may be gone.
func TestImportTo(t *testing.T) {
	e := newEnv(t)
	e.create(2, 3, "alias/old")
	id := recoveryKey(t)
	out := filepath.Join(t.TempDir(), "keys.age")
	if _, err := Export(context.Background(), e.dir, e.client, fastRunner(4), []age.Recipient{id.Recipient()}, out, false, NewMeta(e.dir, time.Now())); err != nil {
		t.Fatal(err)
	}
	b := openBundle(t, out, id)
	e.srv.SetFaults("disable=" + idA + ";fail=Encrypt:ThrottlingException:3")
	e.dir = t.TempDir()
	e.store = keyfile.New(e.dir)
	res, err := Import(context.Background(), b, e.dir, e.client, ImportOptions{To: "alias/new", Runner: fastRunner(1)})
	if err != nil || res.Written != 6 || res.Failed != 0 || res.Throttled < 1 {
		t.Fatalf("Import --to = %+v, %v", res, err)
	}
	e.checkUnder(arnB)
	// Run again: every file is present (it unwraps to the bundle's key).
	res, err = Import(context.Background(), b, e.dir, e.client, ImportOptions{To: "alias/new", Runner: fastRunner(3)})
	if err != nil || res.Present != 6 || res.Written != 0 {
		t.Fatalf("Import --to again = %+v, %v", res, err)
	}
	// A KMS key the credentials cannot use: nothing written.
	e.dir = t.TempDir()
	e.store = keyfile.New(e.dir)
	res, err = Import(context.Background(), b, e.dir, e.client, ImportOptions{To: "alias/none", Runner: fastRunner(3)})
	if err != nil || res.Failed != 6 || !strings.Contains(res.Keys[0].Error, "NotFoundException") {
		t.Fatalf("Import --to an unknown key = %+v, %v", res, err)
	}
	if des, _ := os.ReadDir(e.dir); len(des) != 0 {
		t.Fatalf("files written: %v", des)
	}
}
