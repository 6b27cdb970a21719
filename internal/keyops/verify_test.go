package keyops

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
)

// Every file unwraps: each is reported with its KMS key and key length,
// in parallel (bounded) with progress reported once per file.
func TestVerifyAll(t *testing.T) {
	e := newEnv(t)
	e.create(10, 4, "alias/old")
	r := fastRunner(8)
	p := &countingProgress{}
	r.NewProgress = func(total int, what string) Progress { p.total = total; return p }
	before := e.snapshot()
	res, err := Verify(context.Background(), e.dir, e.client, r)
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked != 40 || res.OK != 40 || res.Failed != 0 || len(res.Keys) != 40 {
		t.Fatalf("checked %d, ok %d, failed %d", res.Checked, res.OK, res.Failed)
	}
	for _, c := range res.Keys {
		if !c.OK || c.CMK != arnA || len(e.keys[c.File]) != c.KeyBytes || c.Error != "" {
			t.Errorf("%+v", c)
		}
	}
	if p.total != 40 || p.added != 40 || !p.finished {
		t.Errorf("progress: %+v", p)
	}
	if got := e.srv.Calls()["Decrypt"]; got != 40+40 { // 40 when created, 40 now
		t.Errorf("%d Decrypt calls", got)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings: %q", res.Warnings)
	}
	e.unchanged(before)
}

// Each bad file is reported with its name and the reason, the others are
// fine, and nothing changes: a truncated blob, garbage, an empty file, a
// symbolic link, a blob under a disabled KMS key, a key of 24 bytes; a
// missing version is a warning.
func TestVerifyFailures(t *testing.T) {
	e := newEnv(t)
	e.create(2, 2, "alias/old")
	e.createOne(3, 1, "alias/new", "AES_128")
	blob, _ := e.store.Read(1, 2)
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(e.dir, name), data, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	write(keyfile.Name(4, 1), blob[:len(blob)/2])
	write(keyfile.Name(5, 1), []byte("this is not a KMS blob"))
	write(keyfile.Name(6, 1), nil)
	if err := os.Symlink(keyfile.Name(1, 1), filepath.Join(e.dir, keyfile.Name(7, 1))); err != nil {
		t.Fatal(err)
	}
	out, err := e.rawKMS().Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String("alias/old"), Plaintext: make([]byte, 24)})
	if err != nil {
		t.Fatal(err)
	}
	write(keyfile.Name(8, 1), out.CiphertextBlob)
	write(keyfile.Name(8, 3), blob) // version 2 missing
	write("aws-kms-key.9.01", blob)
	if err := e.srv.SetFaults("disable=" + idB); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	res, err := Verify(context.Background(), e.dir, e.client, fastRunner(4))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		keyfile.Name(3, 1): "KMS Client API 'Decrypt' failed : DisabledException - " + arnB + " is disabled.",
		keyfile.Name(4, 1): "KMS Client API 'Decrypt' failed : InvalidCiphertextException",
		keyfile.Name(5, 1): "KMS Client API 'Decrypt' failed : InvalidCiphertextException",
		keyfile.Name(6, 1): "key file is empty",
		keyfile.Name(7, 1): "is a symbolic link",
		keyfile.Name(8, 1): "the key has 24 bytes; the server takes 16 (AES_128) or 32 (AES_256)",
	}
	for _, c := range res.Keys {
		w, bad := want[c.File]
		switch {
		case bad && (c.OK || !strings.Contains(c.Error, w) || !strings.Contains(c.Error, c.File)):
			t.Errorf("%s: ok %v, error %q; want one naming the file with %q", c.File, c.OK, c.Error, w)
		case !bad && !c.OK:
			t.Errorf("%s failed: %s", c.File, c.Error)
		}
	}
	if res.Failed != len(want) || res.OK != res.Checked-len(want) || res.Checked != 11 {
		t.Errorf("checked %d, ok %d, failed %d", res.Checked, res.OK, res.Failed)
	}
	warn := strings.Join(res.Warnings, "\n")
	if !strings.Contains(warn, "key 8: version 2 missing") || !strings.Contains(warn, "aws-kms-key.9.01 is ignored by the plugin: leading zeros") {
		t.Errorf("warnings: %q", res.Warnings)
	}
	if len(res.Ignored) != 1 {
		t.Errorf("ignored: %+v", res.Ignored)
	}
	e.unchanged(before)
}

// A directory that is not a key directory is an error that says what it
// is and what to give, and nothing is done.
func TestNotAKeyDirectory(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(e.dir, "my.cnf")
	if err := os.WriteFile(file, []byte("[mysqld]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	onlyIgnored := t.TempDir()
	if err := os.WriteFile(filepath.Join(onlyIgnored, "aws-kms-key.1.00"), []byte("x"), 0o400); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		e.dir:                         "no key files (aws-kms-key.<id>.<version>) in " + e.dir + ": not a key directory; give the datadir",
		file:                          file + " is not a directory",
		filepath.Join(e.dir, "nodir"): "nodir does not exist",
		onlyIgnored:                   "names the plugin ignores: aws-kms-key.1.00",
	}
	before := e.snapshot()
	for dir, want := range cases {
		for op, run := range map[string]func() error{
			"verify": func() error { _, err := Verify(context.Background(), dir, e.client, fastRunner(2)); return err },
			"list":   func() error { _, err := List(context.Background(), dir, ListOptions{KMS: e.client}); return err },
			"rewrap": func() error {
				_, err := Rewrap(context.Background(), dir, e.client, RewrapOptions{To: "alias/new"})
				return err
			},
		} {
			if err := run(); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s %s: %v; want an error with %q", op, dir, err, want)
			}
		}
	}
	if _, err := Verify(context.Background(), e.dir, e.client, fastRunner(2)); !errors.Is(err, ErrNotKeyDir) {
		t.Errorf("errors.Is(ErrNotKeyDir): %v", err)
	}
	e.unchanged(before)
	if calls := e.srv.Calls(); len(calls) != 0 {
		t.Errorf("KMS was called: %v", calls)
	}
}

// Throttling pauses every worker and is retried: every file ends
// verified, and the summary counts the throttled calls.
func TestVerifyThrottled(t *testing.T) {
	e := newEnv(t)
	e.create(2, 2, "alias/old")
	// 3 attempts of the SDK per call and 4 calls at a time: 16
	// throttles make the first 4 calls fail throttled.
	if err := e.srv.SetFaults("fail=Decrypt:ThrottlingException:16"); err != nil {
		t.Fatal(err)
	}
	res, err := Verify(context.Background(), e.dir, e.client, fastRunner(4))
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 4 || res.Failed != 0 || res.Throttled < 2 {
		t.Fatalf("ok %d, failed %d, throttled %d", res.OK, res.Failed, res.Throttled)
	}
	// Without retries of our own the same faults fail files.
	e.srv.SetFaults("fail=Decrypt:ThrottlingException:16")
	r := fastRunner(4)
	r.Attempts = 1
	res, err = Verify(context.Background(), e.dir, e.newClient(), r)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed == 0 || !strings.Contains(res.Keys[0].Error+res.Keys[1].Error+res.Keys[2].Error+res.Keys[3].Error, "ThrottlingException") {
		t.Fatalf("with one attempt: failed %d", res.Failed)
	}
}

// A panic in the work on one file fails that file only.
func TestEachRecoversPanics(t *testing.T) {
	r := fastRunner(3)
	entries := []keyfile.Entry{{ID: 1, Version: 1}, {ID: 2, Version: 1}, {ID: 3, Version: 1}}
	errs, err := r.Each(context.Background(), entries, "x", func(ctx context.Context, w *Worker, i int, e keyfile.Entry) error {
		if len(w.A) != KeySlotSize || len(w.B) != KeySlotSize {
			t.Errorf("slots %d, %d", len(w.A), len(w.B))
		}
		copy(w.A, "secret")
		if e.ID == 2 {
			panic("boom")
		}
		return nil
	})
	if err != nil || errs[0] != nil || errs[2] != nil || errs[1] == nil || !strings.Contains(errs[1].Error(), "internal error on aws-kms-key.2.1: boom") {
		t.Fatalf("%v, %v", errs, err)
	}
}

// A cancelled context stops the run: files not started get its error.
func TestEachStopsWhenCancelled(t *testing.T) {
	r := fastRunner(1)
	ctx, cancel := context.WithCancel(context.Background())
	var entries []keyfile.Entry
	for i := 1; i <= 10; i++ {
		entries = append(entries, keyfile.Entry{ID: uint32(i), Version: 1})
	}
	done := 0
	errs, _ := r.Each(ctx, entries, "x", func(ctx context.Context, w *Worker, i int, e keyfile.Entry) error {
		done++
		if done == 3 {
			cancel()
		}
		return nil
	})
	if done > 4 || errs[9] == nil || !errors.Is(errs[9], context.Canceled) {
		t.Fatalf("ran %d after the cancel; last error %v", done, errs[9])
	}
}

// With KMS out of reach, the run does not wait out every file: after
// Unreachable failures in a row the rest fails at once, saying why.
func TestVerifyKMSUnreachable(t *testing.T) {
	e := newEnv(t)
	e.create(10, 4, "alias/old")
	e.url = "http://127.0.0.1:1" // nothing listens there
	start := time.Now()
	res, err := Verify(context.Background(), e.dir, e.newClient(), fastRunner(8))
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 40 {
		t.Fatalf("failed %d", res.Failed)
	}
	notTried := 0
	for _, k := range res.Keys {
		if strings.Contains(k.Error, "not tried: 8 KMS calls in a row failed to reach KMS") && strings.Contains(k.Error, "connection refused") {
			notTried++
		}
	}
	if notTried < 40-2*8 { // at most the calls in flight when it tripped, and the 8
		t.Errorf("only %d files were not tried after KMS was found out of reach", notTried)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
}
