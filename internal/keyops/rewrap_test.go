package keyops

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/keys"
	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
)

func setRewrapHook(t *testing.T, h func(step string, e keyfile.Entry) error) {
	t.Helper()
	rewrapHook = h
	t.Cleanup(func() { rewrapHook = nil })
}

// backupDirs lists the rewrap backup directories left in dir.
func backupDirs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, BackupDirPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Every file ends wrapped under the target, with the same key, mode 0400
// and its creation time; files already under the target are skipped; no
// backup and no temporary file is left; a second run changes nothing.
func TestRewrap(t *testing.T) {
	e := newEnv(t)
	e.create(6, 3, "alias/old")
	e.createOne(7, 1, "alias/new", "AES_256")
	mtime := time.Date(2020, 2, 2, 2, 2, 2, 0, time.UTC)
	os.Chtimes(e.store.Path(1, 1), mtime, mtime)
	r := fastRunner(4)
	res, err := Rewrap(context.Background(), e.dir, e.client, RewrapOptions{To: "alias/new", Runner: r})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewrapped != 18 || res.Skipped != 1 || res.Failed != 0 || res.TargetARN != arnB || res.Target != "alias/new" {
		t.Fatalf("rewrapped %d, skipped %d, failed %d, target %s", res.Rewrapped, res.Skipped, res.Failed, res.TargetARN)
	}
	for _, k := range res.Keys {
		want := ActionRewrapped
		from := arnA
		if k.KeyID == 7 {
			want, from = ActionSkipped, arnB
		}
		if k.Action != want || k.From != from || k.To != arnB || k.Error != "" {
			t.Errorf("%+v", k)
		}
	}
	e.checkUnder(arnB)
	if st, _ := os.Stat(e.store.Path(1, 1)); !st.ModTime().Equal(mtime) {
		t.Errorf("mtime %v, want %v (kept)", st.ModTime(), mtime)
	}
	if b := backupDirs(t, e.dir); len(b) != 0 || !strings.HasPrefix(filepath.Base(res.BackupDir), BackupDirPrefix) {
		t.Errorf("backup directories left: %v (this run's: %s)", b, res.BackupDir)
	}
	des, _ := os.ReadDir(e.dir)
	if len(des) != 19 {
		t.Errorf("%d entries in the directory, want the 19 key files", len(des))
	}
	calls := e.srv.Calls()
	if calls["ReEncrypt"] != 18 || calls["DescribeKey"] != 1 {
		t.Errorf("calls %v", calls)
	}
	e.srv.ResetCalls()
	before := e.snapshot()
	res, err = Rewrap(context.Background(), e.dir, e.client, RewrapOptions{To: arnB, Runner: fastRunner(4)})
	if err != nil || res.Skipped != 19 || res.Rewrapped != 0 {
		t.Fatalf("second run: %+v, %v", res, err)
	}
	if n := e.srv.Calls()["ReEncrypt"]; n != 0 {
		t.Errorf("second run: %d ReEncrypt calls", n)
	}
	e.unchanged(before)
}

// --dry-run unwraps to find out, and changes nothing.
func TestRewrapDryRun(t *testing.T) {
	e := newEnv(t)
	e.create(2, 2, "alias/old")
	e.createOne(3, 1, "alias/new", "AES_128")
	before := e.snapshot()
	res, err := Rewrap(context.Background(), e.dir, e.client, RewrapOptions{To: "alias/new", DryRun: true, Runner: fastRunner(2)})
	if err != nil {
		t.Fatal(err)
	}
	if res.WouldRewrap != 4 || res.Skipped != 1 || res.Rewrapped != 0 || !res.DryRun || res.BackupDir != "" {
		t.Fatalf("%+v", res)
	}
	if n := e.srv.Calls()["ReEncrypt"]; n != 0 {
		t.Errorf("--dry-run made %d ReEncrypt calls", n)
	}
	e.unchanged(before)
}

// A target that cannot be used is refused before anything changes: one
// that does not exist, a disabled one, a wrong name.
func TestRewrapBadTarget(t *testing.T) {
	e := newEnv(t)
	e.create(2, 1, "alias/old")
	e.srv.CreateKey("0c0c0c0c-0000-4000-8000-00000000000c", "alias/off")
	e.srv.SetFaults("disable=0c0c0c0c-0000-4000-8000-00000000000c")
	before := e.snapshot()
	for to, want := range map[string]string{
		"alias/none":                "--to alias/none: cannot re-wrap under this key: KMS Client API 'DescribeKey' failed : NotFoundException",
		"alias/off":                 "the key is Disabled; enable it, or choose another",
		"arn:aws:kms:eu-west-1:1:x": "NotFoundException",
		"":                          "ValidationException",
	} {
		_, err := Rewrap(context.Background(), e.dir, e.client, RewrapOptions{To: to, Runner: fastRunner(2)})
		if !errors.Is(err, ErrBadTarget) || !strings.Contains(err.Error(), want) {
			t.Errorf("--to %q: %v; want %q", to, err, want)
		}
	}
	if n := e.srv.Calls()["ReEncrypt"] + e.srv.Calls()["Decrypt"]; n != 2 { // the 2 of create
		t.Errorf("%d Decrypt/ReEncrypt calls", n)
	}
	e.unchanged(before)
}

// When the old KMS key cannot be used (disabled, or the credentials may
// not), every file fails with KMS's reason and nothing changes.
func TestRewrapSourceUnusable(t *testing.T) {
	e := newEnv(t)
	e.create(3, 1, "alias/old")
	e.srv.SetFaults("disable=" + idA)
	before := e.snapshot()
	res, err := Rewrap(context.Background(), e.dir, e.client, RewrapOptions{To: "alias/new", Runner: fastRunner(2)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 3 || res.Rewrapped != 0 {
		t.Fatalf("%+v", res)
	}
	for _, k := range res.Keys {
		if !strings.Contains(k.Error, "DisabledException - "+arnA+" is disabled") || !strings.Contains(k.Error, k.File) {
			t.Errorf("%s: %q", k.File, k.Error)
		}
	}
	e.unchanged(before)
}

// Throttled ReEncrypt calls pause the workers and are retried; the
// summary counts them.
func TestRewrapThrottled(t *testing.T) {
	e := newEnv(t)
	e.create(2, 2, "alias/old")
	e.srv.SetFaults("fail=ReEncrypt:ThrottlingException:16")
	res, err := Rewrap(context.Background(), e.dir, e.client, RewrapOptions{To: "alias/new", Runner: fastRunner(4)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewrapped != 4 || res.Throttled < 1 {
		t.Fatalf("rewrapped %d, throttled %d", res.Rewrapped, res.Throttled)
	}
	e.checkUnder(arnB)
}

// An interrupted run (here: cancelled right after the 5th file was
// replaced, before it was checked, while others are in any state) leaves
// backups; the next run checks them against the key files, removes them,
// and finishes: every file under the target, nothing lost, no backup.
func TestRewrapInterruptedAndRunAgain(t *testing.T) {
	for _, step := range []string{"backup", "replace", "verify"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			e.create(4, 5, "alias/old")
			ctx, cancel := context.WithCancel(context.Background())
			var n atomic.Int32
			setRewrapHook(t, func(s string, en keyfile.Entry) error {
				if s == step && n.Add(1) == 5 {
					cancel()
					return context.Canceled
				}
				return nil
			})
			res, err := Rewrap(ctx, e.dir, e.client, RewrapOptions{To: "alias/new", Runner: fastRunner(3)})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			rewrapHook = nil
			if res.Failed == 0 || res.Rewrapped+res.Failed != 20 {
				t.Fatalf("first run: rewrapped %d, failed %d", res.Rewrapped, res.Failed)
			}
			left := backupDirs(t, e.dir)
			if len(left) != 1 {
				t.Fatalf("backup directories after the interruption: %v", left)
			}
			kept, _ := os.ReadDir(left[0])
			if len(kept) == 0 {
				t.Fatalf("no backup kept in %s", left[0])
			}
			res, err = Rewrap(context.Background(), e.dir, e.client, RewrapOptions{To: "alias/new", Runner: fastRunner(3)})
			if err != nil {
				t.Fatal(err)
			}
			if res.Failed != 0 || res.Rewrapped+res.Skipped != 20 {
				t.Fatalf("second run: rewrapped %d, skipped %d, failed %d", res.Rewrapped, res.Skipped, res.Failed)
			}
			removed := 0
			for _, lo := range res.Leftovers {
				if lo.Action != "removed" {
					t.Errorf("leftover %+v", lo)
				}
				if strings.HasPrefix(filepath.Base(lo.Backup), "aws-kms-key.") {
					removed++
				}
			}
			if removed != len(kept) {
				t.Errorf("%d backups removed, %d were left", removed, len(kept))
			}
			if b := backupDirs(t, e.dir); len(b) != 0 {
				t.Errorf("backup directories left: %v", b)
			}
			e.checkUnder(arnB)
		})
	}
}

// A leftover whose key file holds a blob that does not unwrap to the old
// key (a broken replacement) is restored from the backup, then
// re-wrapped.
func TestRewrapRestoresFromLeftover(t *testing.T) {
	e := newEnv(t)
	e.create(2, 1, "alias/old")
	old, _ := e.store.Read(1, 1)
	bd := filepath.Join(e.dir, BackupDirPrefix+"20240101T000000Z")
	if err := os.Mkdir(bd, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bd, keyfile.Name(1, 1)), old, 0o400); err != nil {
		t.Fatal(err)
	}
	other, _ := e.client.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/new", "AES_128")
	if err := e.store.Replace(1, 1, other); err != nil {
		t.Fatal(err)
	}
	res, err := Rewrap(context.Background(), e.dir, e.client, RewrapOptions{To: "alias/new", Runner: fastRunner(2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Leftovers) != 2 || res.Leftovers[0].Action != "restored" || !strings.Contains(res.Leftovers[0].Note, "unwraps to another key") ||
		res.Leftovers[1].Action != "removed" {
		t.Fatalf("leftovers %+v", res.Leftovers)
	}
	if res.Rewrapped != 2 {
		t.Fatalf("rewrapped %d", res.Rewrapped)
	}
	e.checkUnder(arnB)
}

// lyingKMS re-wraps every blob to a blob of another data key.
type lyingKMS struct {
	*kmsbackend.Client
	other []byte
}

func (l lyingKMS) ReEncrypt(ctx context.Context, blob []byte, dest string) (kmsbackend.ReEncrypted, error) {
	out, err := l.Client.ReEncrypt(ctx, blob, dest)
	out.Blob = l.other
	return out, err
}

// A new blob that does not unwrap to the key of the old one is caught by
// the check: the old blob is put back, the file is reported, no backup
// stays.
func TestRewrapCatchesWrongNewBlob(t *testing.T) {
	e := newEnv(t)
	e.create(2, 1, "alias/old")
	other, _ := e.client.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/new", "AES_256")
	before := e.snapshot()
	res, err := Rewrap(context.Background(), e.dir, lyingKMS{e.client, other}, RewrapOptions{To: "alias/new", Runner: fastRunner(2)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 2 {
		t.Fatalf("%+v", res)
	}
	for _, k := range res.Keys {
		if !strings.Contains(k.Error, "the new blob unwraps to another key") || !strings.Contains(k.Error, "the old blob is back in place") {
			t.Errorf("%s: %q", k.File, k.Error)
		}
	}
	// The old content is back (new inode, same bytes, mode, mtime).
	e.unchanged(before)
}

// keysLog is a keys.Logger that records warnings.
type keysLog struct{ warnings atomic.Int32 }

func (l *keysLog) Note(string)          {}
func (l *keysLog) Warning(string)       { l.warnings.Add(1) }
func (l *keysLog) Error(string)         {}
func (l *keysLog) KMSError(string)      {}
func (l *keysLog) ClientError(string)   {}
func (l *keysLog) ClientWarning(string) {}

// preload starts the plugin's key manager on the directory, as the
// server's start does, and returns how many versions it unwrapped.
func (e *env) preload() keys.PreloadResult {
	e.t.Helper()
	m := keys.New(keys.Config{
		MasterKeyID: func() string { return "alias/new" },
		KeySpec:     func() string { return "AES_128" },
		KMS:         e.newClient(),
		Store:       e.store,
		Log:         &keysLog{},
	})
	if err := m.Open(); err != nil {
		e.t.Fatal(err)
	}
	defer m.Close(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return m.Preload(ctx, keys.PreloadConfig{Parallel: 4, Attempts: 1})
}

// After a rewrap the old KMS key can be disabled and the plugin's key
// manager still unwraps every version at start; before it, disabling
// the old key makes every version fail (the control).
func TestRewrapThenDisableOldKey(t *testing.T) {
	e := newEnv(t)
	e.create(3, 3, "alias/old")
	e.srv.SetFaults("disable=" + idA)
	if res := e.preload(); res.Loaded != 0 || res.Failed != 9 {
		t.Fatalf("control, old key disabled before the rewrap: %+v", res)
	}
	e.srv.SetFaults("")
	res, err := Rewrap(context.Background(), e.dir, e.client, RewrapOptions{To: "alias/new", Runner: fastRunner(4)})
	if err != nil || res.Rewrapped != 9 {
		t.Fatalf("%+v, %v", res, err)
	}
	e.srv.SetFaults("disable=" + idA)
	if res := e.preload(); res.Loaded != 9 || res.Failed != 0 {
		t.Fatalf("old key disabled after the rewrap: %+v", res)
	}
}

// A run killed while it wrote a backup leaves a temporary file in the
// backup directory (never a backup under its final name that is cut
// short: backups are written as key files are); the next run removes it
// and the directory, and every file ends under the target.
func TestRewrapRemovesPartialBackup(t *testing.T) {
	e := newEnv(t)
	e.create(2, 1, "alias/old")
	bd := filepath.Join(e.dir, BackupDirPrefix+"20240101T000000Z")
	if err := os.Mkdir(bd, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bd, keyfile.Name(1, 1)+".tmp-0123456789ab"), []byte("cut sh"), 0o400); err != nil {
		t.Fatal(err)
	}
	res, err := Rewrap(context.Background(), e.dir, e.client, RewrapOptions{To: "alias/new", Runner: fastRunner(2)})
	if err != nil || res.Rewrapped != 2 {
		t.Fatalf("%+v, %v", res, err)
	}
	if len(res.Leftovers) != 1 || res.Leftovers[0].Backup != bd || res.Leftovers[0].Action != "removed" {
		t.Errorf("leftovers %+v", res.Leftovers)
	}
	if b := backupDirs(t, e.dir); len(b) != 0 {
		t.Errorf("backup directories left: %v", b)
	}
	e.checkUnder(arnB)
}
