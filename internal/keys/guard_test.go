package keys_test

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mariadb-go/aws_key_management/internal/keys"
)

// copyFixture writes a file of internal/datafiles/testdata (written by a
// real mariadbd; .gz ones unpacked) to path.
func copyFixture(t *testing.T, name, path string) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "datafiles", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if filepath.Ext(name) == ".gz" {
		if r, err = gzip.NewReader(f); err != nil {
			t.Fatal(err)
		}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func withDataDir(d string) option { return func(c *keys.Config) { c.DataDir = d } }

// A datadir restored without its key files: the redo log is encrypted
// with key 1, a table with key 5. Those keys are not generated anew (the
// error names the files and the fix), nor is any other. Once the key
// files are back, they are used.
func TestGuardRefusesKeysTheDataUses(t *testing.T) {
	data, keyDir := t.TempDir(), t.TempDir()
	copyFixture(t, "ib_logfile0-enc11.header", filepath.Join(data, "ib_logfile0"))
	copyFixture(t, "t5.ibd-page0.gz", filepath.Join(data, "d", "t5.ibd"))
	copyFixture(t, "plain.ibd-page0.gz", filepath.Join(data, "mysql", "plain.ibd"))
	e := newEnv(t, keyDir, nil, withDataDir(data))
	e.log.wantSub(t, "Error", "no key file in "+keyDir+", but the datadir holds data encrypted with key ids 1, 5 (ib_logfile0 (key 1 version 1), d/t5.ibd (key 5)): no new key will be generated (a new key would not read that data)")
	e.wantLatest(t, 5, keys.VersionInvalid)
	e.log.wantSub(t, "Error", "key id 5 has no key file in "+keyDir+", but the datadir holds data encrypted with it (d/t5.ibd (key 5)): a new key 5 could not read that data, so none is generated; copy the key files (aws-kms-key.*) from the backup")
	e.wantLatest(t, 1, keys.VersionInvalid)
	if e.exists(1, 1) || e.exists(5, 1) {
		t.Fatal("a key file was generated for a key id the data uses")
	}
	// Nor any other key id (temporary files' key 2): this key directory
	// is not the data's.
	e.wantLatest(t, 2, keys.VersionInvalid)
	e.log.wantSub(t, "Error", "key id 2 is not generated: "+keyDir+" has no key file, but the datadir holds encrypted data (ib_logfile0 (key 1 version 1), d/t5.ibd (key 5)), so it is not the key directory of this data")
	if e.exists(2, 1) {
		t.Fatal("key 2 was generated")
	}
	// The key files come back (copied while the server runs): used.
	writeKeyFile(t, keyDir, 5, 3, 16)
	e.clock.Advance(retryMax)
	e.wantLatest(t, 5, 3)
}

// A first start: no key file, and the data is not encrypted (yet).
func TestGuardLetsAFirstStartGenerate(t *testing.T) {
	data, keyDir := t.TempDir(), t.TempDir()
	copyFixture(t, "ib_logfile0-plain.header", filepath.Join(data, "ib_logfile0"))
	copyFixture(t, "plain.ibd-page0.gz", filepath.Join(data, "mysql", "plain.ibd"))
	e := newEnv(t, keyDir, nil, withDataDir(data))
	e.log.wantNone(t, "Error", "Warning")
	e.wantLatest(t, 1, 1)
	e.wantLatest(t, 5, 1)
	// With key files present the data is not even looked at.
	copyFixture(t, "t5.ibd-page0.gz", filepath.Join(data, "d", "t5.ibd"))
	e.reopen(t)
	e.wantLatest(t, 6, 1)
	e.log.wantNone(t, "Error")
}
