package keyops

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/datafiles"
	"github.com/mariadb-go/aws_key_management/internal/keyusage"
)

// list shows every key file with size, mode and age; with --kms the KMS
// key each is wrapped under; names the plugin ignores with the reason;
// leftovers of interrupted writes; and, with a server's use, a status.
func TestList(t *testing.T) {
	e := newEnv(t)
	e.create(1, 2, "alias/old")
	e.createOne(5, 1, "alias/new", "AES_256")
	created := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(e.store.Path(1, 1), created, created); err != nil {
		t.Fatal(err)
	}
	blob, _ := e.store.Read(1, 1)
	for name, data := range map[string][]byte{
		"aws-kms-key.1.02":                    blob,
		"aws-kms-key.1.2.tmp-0123456789ab":    blob[:10],
		"aws-kms-key.1.1.bak":                 blob,
		BackupDirPrefix + "20250101T000000Z/": nil,
	} {
		p := filepath.Join(e.dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := e.snapshot()
	e.srv.ResetCalls()
	res, err := List(context.Background(), e.dir, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if calls := e.srv.Calls(); len(calls) != 0 {
		t.Errorf("list without --kms called KMS: %v", calls)
	}
	if len(res.Keys) != 3 {
		t.Fatalf("%d keys", len(res.Keys))
	}
	k := res.Keys[0]
	if k.File != "aws-kms-key.1.1" || k.Size != int64(len(blob)) || k.Mode != "0400" || !k.ModTime.Equal(created) ||
		k.AgeSeconds < 48*3600 || k.AgeSeconds > 48*3600+60 || k.CMK != "" || k.Latest || k.Status != keyusage.Unknown {
		t.Errorf("first key: %+v", k)
	}
	if s := []string{res.Keys[1].Status, res.Keys[2].Status}; !reflect.DeepEqual(s, []string{keyusage.Latest, keyusage.Latest}) || !res.Keys[1].Latest {
		t.Errorf("statuses %v", s)
	}
	if len(res.Ignored) != 1 || res.Ignored[0].Name != "aws-kms-key.1.02" || !strings.Contains(res.Ignored[0].Reason, "leading zeros") {
		t.Errorf("ignored %+v", res.Ignored)
	}
	if want := []string{BackupDirPrefix + "20250101T000000Z/", "aws-kms-key.1.2.tmp-0123456789ab"}; !reflect.DeepEqual(res.Leftovers, want) {
		t.Errorf("leftovers %q, want %q", res.Leftovers, want)
	}

	res, err = List(context.Background(), e.dir, ListOptions{KMS: e.client, Runner: fastRunner(2)})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range res.Keys {
		want := arnA
		if k.KeyID == 5 {
			want = arnB
		}
		if k.CMK != want || k.KeyBytes != len(e.keys[k.File]) || k.Error != "" {
			t.Errorf("--kms: %+v", k)
		}
	}
	// A KMS key that is disabled: its files say so; the others are fine.
	e.srv.SetFaults("disable=" + idB)
	res, _ = List(context.Background(), e.dir, ListOptions{KMS: e.client, Runner: fastRunner(2)})
	if k := res.Keys[2]; k.CMK != "" || !strings.Contains(k.Error, "DisabledException") || !strings.Contains(k.Error, "aws-kms-key.5.1") || res.Keys[0].Error != "" {
		t.Errorf("disabled key: %+v", res.Keys)
	}
	e.unchanged(before)
}

// With a server's use, each version gets its status, and a server that
// reads another directory is a warning.
func TestListWithUsage(t *testing.T) {
	e := newEnv(t)
	e.create(1, 1, "alias/old")
	for v := uint32(1); v <= 3; v++ {
		e.createOne(7, v, "alias/old", "AES_128")
	}
	u := &keyusage.Usage{
		KeyDir:      t.TempDir(),
		Started:     time.Now().Add(-time.Hour),
		Tablespaces: []keyusage.Tablespace{{Name: "d/t", Scheme: 1, KeyID: 7, MinKeyVersion: 2, CurrentKeyVersion: 3}},
		RedoLog:     &datafiles.RedoLog{Path: "ib_logfile0", Encrypted: true, KeyID: 1, KeyVersion: 1},
		Settings:    map[string]string{},
	}
	res, err := List(context.Background(), e.dir, ListOptions{Usage: u})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range res.Keys {
		got = append(got, k.File+" "+k.Status)
	}
	want := []string{"aws-kms-key.1.1 in-use", "aws-kms-key.7.1 not-needed", "aws-kms-key.7.2 in-use", "aws-kms-key.7.3 in-use"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("statuses %q, want %q", got, want)
	}
	if res.Server != u || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "the server reads its key files from "+u.KeyDir) {
		t.Errorf("warnings %q", res.Warnings)
	}
	if !reflect.DeepEqual(res.Keys[0].UsedBy, []string{"redo-log: ib_logfile0"}) {
		t.Errorf("used by %q", res.Keys[0].UsedBy)
	}
}
