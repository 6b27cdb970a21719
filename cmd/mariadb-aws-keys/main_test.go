package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
	"github.com/mariadb-go/aws_key_management/internal/kmstest"
)

// These tests run the built binary, as a DBA or a script does, against
// the loopback KMS emulator of this process.

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mariadb-aws-keys-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "mariadb-aws-keys")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	region = "eu-west-1"
	idA    = "0a0a0a0a-0000-4000-8000-00000000000a"
	idB    = "0b0b0b0b-0000-4000-8000-00000000000b"
	arnA   = "arn:aws:kms:" + region + ":111122223333:key/" + idA
	arnB   = "arn:aws:kms:" + region + ":111122223333:key/" + idB
	akid   = "AKIACLITEST"
	secret = "cli-secret"
)

// world is an emulator with keys A (alias/old) and B (alias/new), a key
// directory, and the environment the binary runs in: credentials in a
// credentials file only, as the plugin's docs set them up.
type world struct {
	t      *testing.T
	srv    *kmstest.Server
	url    string
	dir    string
	envs   []string
	client *kmsbackend.Client
	keys   map[string][]byte
}

func newWorld(t *testing.T) *world {
	t.Helper()
	srv, ts, url := kmstest.Start(kmstest.Config{Region: region, AccessKeyID: akid, SecretAccessKey: secret})
	t.Cleanup(ts.Close)
	t.Cleanup(srv.Close)
	srv.CreateKey(idA, "alias/old")
	srv.CreateKey(idB, "alias/new")
	home := t.TempDir()
	creds := filepath.Join(home, "credentials")
	if err := os.WriteFile(creds, []byte(fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\nregion = %s\n", akid, secret, region)), 0o600); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, srv: srv, url: url, dir: t.TempDir(), keys: map[string][]byte{}}
	w.envs = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "AWS_CREDENTIAL_PROFILES_FILE=" + creds,
		"AWS_CONFIG_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true", "LANG=C"}
	// The test's own client, for making and checking key files.
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": "",
		"AWS_REGION": region, "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
		"AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(k, v)
	}
	c, err := kmsbackend.New(context.Background(), kmsbackend.Config{EndpointURL: url, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w.client = c
	return w
}

// create makes key files 1..n (versions 1..v) under master.
func (w *world) create(n, v int, master string) {
	w.t.Helper()
	s := keyfile.New(w.dir)
	for id := 1; id <= n; id++ {
		for ver := 1; ver <= v; ver++ {
			blob, err := w.client.GenerateDataKeyWithoutPlaintext(context.Background(), master, "AES_128")
			if err != nil {
				w.t.Fatal(err)
			}
			if err := s.Create(uint32(id), uint32(ver), blob); err != nil {
				w.t.Fatal(err)
			}
			w.keys[keyfile.Name(uint32(id), uint32(ver))] = w.unwrap(blob, "")
		}
	}
}

// unwrap opens a blob and checks its KMS key (if arn is set).
func (w *world) unwrap(blob []byte, arn string) []byte {
	w.t.Helper()
	dst := make([]byte, 32)
	n, got, err := w.client.DecryptWithKeyID(context.Background(), blob, dst)
	if err != nil || arn != "" && got != arn {
		w.t.Fatalf("unwrap: under %q (want %q): %v", got, arn, err)
	}
	return dst[:n]
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the binary with the world's environment; --no-defaults and the
// emulator's endpoint come first unless noCommon.
func (w *world) run(args ...string) result {
	w.t.Helper()
	return w.runEnv(nil, append([]string{"--no-defaults", "--endpoint-url", w.url}, args...)...)
}

func (w *world) runEnv(extra []string, args ...string) result {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append([]string{}, w.envs...), extra...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatalf("running %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// endpointWarning is the one line every run against the emulator prints.
func withoutEndpointWarning(stderr string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if l != "" && !strings.Contains(l, "warning: using endpoint http://127.0.0.1") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// --help of the tool and of each command: exit 0, help on stdout with
// examples for each command, nothing on stderr.
func TestHelp(t *testing.T) {
	w := newWorld(t)
	for _, args := range [][]string{{"--help"}, {"help"}, {"list", "--help"}, {"verify", "--help"}, {"rewrap", "--help"}, {"help", "rewrap"}, {"enable-key", "--help"}, {"disable-key", "--help"}} {
		r := w.runEnv(nil, args...)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: exit %d, stderr %q, stdout %.200q", args, r.code, r.stderr, r.stdout)
		}
		if len(args) == 2 && !strings.Contains(r.stdout, "Examples:\n  # ") {
			t.Errorf("%v: no examples", args)
		}
	}
	r := w.runEnv(nil, "--help")
	for _, want := range []string{"list", "verify", "rewrap", "Exit codes: 0 success; 1", "--defaults-file", "--json"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
}

// Bad command lines and bad input: exit 2, one message on stderr naming
// the problem and the fix, nothing on stdout, nothing changed.
func TestUsageErrors(t *testing.T) {
	w := newWorld(t)
	w.create(1, 1, "alias/old")
	file := filepath.Join(w.dir, "aws-kms-key.1.1")
	empty := t.TempDir()
	before := snapshot(t, w.dir)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"list", "a", "b"}, "accepts at most 1 arg(s), received 2"},
		{[]string{"rewrap", w.dir}, `required flag(s) "to" not set`},
		{[]string{"rewrap", "--to", "", w.dir}, "--to is empty"},
		{[]string{"verify", empty}, "no key files (aws-kms-key.<id>.<version>) in " + empty + ": not a key directory"},
		{[]string{"verify", file}, file + " is not a directory"},
		{[]string{"list", "--kms", filepath.Join(empty, "none")}, "none does not exist"},
		{[]string{"rewrap", "--to", "alias/nothing", w.dir}, "--to alias/nothing: cannot re-wrap under this key: KMS Client API 'DescribeKey' failed : NotFoundException"},
		{[]string{"verify", "--parallel", "0", w.dir}, "--parallel 0: want 1 to 256"},
		{[]string{"verify", "--log-level", "Loud", w.dir}, `--log-level "Loud"`},
		{[]string{"--endpoint-url", "http://192.0.2.1", "verify", w.dir}, "http:// is allowed only to a loopback address"},
		{[]string{"--datadir", empty, "verify"}, "no key files (aws-kms-key.<id>.<version>) in " + empty + ": not a key directory; give the datadir or aws_key_management_keyfile_dir (key directory from the datadir)"},
	} {
		r := w.run(c.args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "mariadb-aws-keys: ") || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, r.code, r.stdout, r.stderr, c.want)
		}
	}
	if calls := w.srv.Calls(); calls["ReEncrypt"] != 0 || calls["Decrypt"] != 1 { // the one of create
		t.Errorf("KMS calls: %v", calls)
	}
	if after := snapshot(t, w.dir); !reflect.DeepEqual(before, after) {
		t.Errorf("the directory changed")
	}
}

// verify: a clean directory exits 0 with one summary line on stdout; a
// damaged file exits 1, names the file and the reason on stderr; the
// JSON report is valid and has the documented fields; no progress bar
// when stderr is not a terminal.
func TestVerify(t *testing.T) {
	w := newWorld(t)
	w.create(3, 2, "alias/old")
	r := w.run("verify", w.dir)
	if r.code != 0 || r.stdout != fmt.Sprintf("verified 6 key files in %s: 6 ok, 0 failed; 0 KMS calls throttled and retried\n", w.dir) ||
		withoutEndpointWarning(r.stderr) != "" {
		t.Fatalf("clean: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	blob, _ := os.ReadFile(filepath.Join(w.dir, "aws-kms-key.2.2"))
	os.Chmod(filepath.Join(w.dir, "aws-kms-key.2.2"), 0o600)
	if err := os.WriteFile(filepath.Join(w.dir, "aws-kms-key.2.2"), blob[:40], 0o400); err != nil {
		t.Fatal(err)
	}
	r = w.run("verify", w.dir)
	if r.code != 1 || !strings.Contains(r.stdout, "6 key files in "+w.dir+": 5 ok, 1 failed") ||
		!strings.Contains(r.stderr, "mariadb-aws-keys: FAILED unwrapping "+filepath.Join(w.dir, "aws-kms-key.2.2")+": KMS Client API 'Decrypt' failed : InvalidCiphertextException") {
		t.Fatalf("damaged: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = w.run("verify", "--json", w.dir)
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 1 {
		t.Fatalf("--json: exit %d, %v: %q", r.code, err, r.stdout)
	}
	checkFields(t, "verify", v, "directory keys ignored checked ok failed throttled warnings")
	k := v["keys"].([]any)[3].(map[string]any)
	checkFields(t, "verify key (failed)", k, "key_id version file ok error")
	checkFields(t, "verify key", v["keys"].([]any)[0].(map[string]any), "key_id version file ok key_bytes cmk_arn")
	if strings.ContainsAny(r.stderr, "\r\x1b") || strings.Contains(r.stderr, "verifying") {
		t.Errorf("progress output on a stderr that is not a terminal: %q", r.stderr)
	}
}

// checkFields checks that a JSON object has exactly the documented
// fields (README, "Operations").
func checkFields(t *testing.T, what string, obj map[string]any, fields string) {
	t.Helper()
	var got []string
	for k := range obj {
		got = append(got, k)
	}
	want := strings.Fields(fields)
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: JSON fields %v, documented %v", what, got, want)
	}
}

// On a terminal (a pseudo-terminal made by script(1)) the progress bar
// is shown on stderr; the same run without one shows none (TestVerify):
// the check there can fail.
func TestProgressBarOnTerminal(t *testing.T) {
	w := newWorld(t)
	w.create(4, 5, "alias/old")
	w.srv.SetFaults("delay=Decrypt:150")
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatal("script(1) is needed for the terminal test (util-linux): ", err)
	}
	line := fmt.Sprintf("%s --no-defaults --endpoint-url %s --parallel 2 verify %s", bin, w.url, w.dir)
	cmd := exec.Command(script, "-qefc", line, "/dev/null")
	cmd.Env = w.envs
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "verifying") || !strings.Contains(string(out), "/20") || !strings.Contains(string(out), "\r") {
		t.Errorf("no progress bar on a terminal: %q", out)
	}
	if !strings.Contains(string(out), "20 ok, 0 failed") {
		t.Errorf("no summary: %q", out)
	}
	w.srv.SetFaults("delay=Decrypt:150")
	cmd = exec.Command(script, "-qefc", strings.Replace(line, " verify ", " --no-progress verify ", 1), "/dev/null")
	cmd.Env = w.envs
	if out, _ = cmd.CombinedOutput(); strings.Contains(string(out), "verifying") {
		t.Errorf("--no-progress shows a bar: %q", out)
	}
}

// list and list --kms, table and JSON; the settings from an option file
// (--defaults-file) as the server's; the credentials from
// <datadir>/.aws/credentials with no other source, as the plugin finds
// them.
func TestListWithOptionFile(t *testing.T) {
	w := newWorld(t)
	datadir := t.TempDir()
	w.dir = filepath.Join(datadir, "keys")
	os.Mkdir(w.dir, 0o700)
	w.create(2, 2, "alias/old")
	os.MkdirAll(filepath.Join(datadir, ".aws"), 0o700)
	creds := strings.TrimPrefix(w.envs[2], "AWS_CREDENTIAL_PROFILES_FILE=")
	data, _ := os.ReadFile(creds)
	os.WriteFile(filepath.Join(datadir, ".aws", "credentials"), data, 0o600)
	cnf := filepath.Join(t.TempDir(), "my.cnf")
	os.WriteFile(cnf, []byte(fmt.Sprintf("[mysqld]\ndatadir = %s\n[mariadb]\naws_key_management_keyfile_dir = keys\naws_key_management_endpoint_url = %s\naws_key_management_region = %s\n",
		datadir, w.url, region)), 0o600)
	w.envs = []string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent", "AWS_CONFIG_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true"}
	r := w.runEnv(nil, "--defaults-file", cnf, "list", "--kms")
	if r.code != 0 || withoutEndpointWarning(r.stderr) != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "KEY  VERSION  SIZE  MODE  AGE") ||
		!strings.Contains(lines[1], arnA) || !strings.Contains(lines[2], arnA+"  latest") ||
		lines[5] != "4 key files in "+w.dir+": 2 latest, 2 unknown" {
		t.Errorf("table:\n%s", r.stdout)
	}
	r = w.runEnv(nil, "--defaults-file", cnf, "list", "--json")
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 {
		t.Fatalf("--json: exit %d, %v: %q", r.code, err, r.stdout)
	}
	checkFields(t, "list", v, "directory keys ignored leftovers server warnings throttled")
	checkFields(t, "list key", v["keys"].([]any)[0].(map[string]any), "key_id version file size mode mtime age_seconds latest status used_by reasons")
	if calls := w.srv.Calls()["Decrypt"]; calls != 4+4 {
		t.Errorf("%d Decrypt calls (4 when created, 4 for --kms, none without)", calls)
	}
	// Without the datadir's credentials file, no credentials: the KMS
	// error says so, exit 1.
	os.Remove(filepath.Join(datadir, ".aws", "credentials"))
	r = w.runEnv(nil, "--defaults-file", cnf, "list", "--kms")
	if r.code != 1 || !strings.Contains(r.stderr, "aws-kms-key.1.1") || !strings.Contains(strings.ToLower(r.stderr), "credentials") {
		t.Errorf("no credentials: exit %d, stderr %q", r.code, r.stderr)
	}
}

// rewrap: --dry-run changes nothing; a run moves every file under the new
// key (same keys), a second run skips them all; the JSON report has the
// documented fields.
func TestRewrap(t *testing.T) {
	w := newWorld(t)
	w.create(3, 2, "alias/old")
	before := snapshot(t, w.dir)
	r := w.run("rewrap", "--dry-run", "--to", "alias/new", w.dir)
	if r.code != 0 || !strings.Contains(r.stdout, "dry run, nothing changed: 6 of 6 key files in "+w.dir+" would be re-wrapped under "+arnB) {
		t.Fatalf("--dry-run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if after := snapshot(t, w.dir); !reflect.DeepEqual(before, after) {
		t.Fatal("--dry-run changed the directory")
	}
	r = w.run("rewrap", "--to", "alias/new", w.dir)
	if r.code != 0 || !strings.Contains(r.stdout, "re-wrapped 6 key files in "+w.dir+" under "+arnB+": 0 were already, 0 failed") ||
		!strings.Contains(r.stdout, "no key file here is wrapped under "+arnA+" any more") || withoutEndpointWarning(r.stderr) != "" {
		t.Fatalf("rewrap: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	w.checkAll(arnB)
	r = w.run("rewrap", "--json", "--to", arnB, w.dir)
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 {
		t.Fatalf("--json: exit %d, %v: %q", r.code, err, r.stdout)
	}
	checkFields(t, "rewrap", v, "directory target target_arn dry_run backup_dir keys rewrapped skipped failed would_rewrap throttled leftovers new_files warnings")
	checkFields(t, "rewrap key", v["keys"].([]any)[0].(map[string]any), "key_id version file action from_arn to_arn")
	if v["skipped"].(float64) != 6 {
		t.Errorf("second run: %v", v)
	}
	// The old key disabled: every file still unwraps.
	w.srv.SetFaults("disable=" + idA)
	if r = w.run("verify", w.dir); r.code != 0 {
		t.Errorf("verify with the old key disabled: exit %d, %q", r.code, r.stderr)
	}
}

// checkAll checks that every key file unwraps under arn to its first key.
func (w *world) checkAll(arn string) {
	w.t.Helper()
	s := keyfile.New(w.dir)
	entries, err := s.Scan()
	if err != nil || len(entries) != len(w.keys) {
		w.t.Fatalf("%d key files (%v), want %d", len(entries), err, len(w.keys))
	}
	for _, e := range entries {
		blob, err := s.Read(e.ID, e.Version)
		if err != nil {
			w.t.Fatal(err)
		}
		if got := w.unwrap(blob, arn); !bytes.Equal(got, w.keys[keyfile.Name(e.ID, e.Version)]) {
			w.t.Errorf("%s unwraps to another key", keyfile.Name(e.ID, e.Version))
		}
	}
}

// A rewrap killed with SIGKILL at random moments (every other time as
// soon as a backup exists), again and again, loses nothing: after every kill each key file unwraps to its own key (under
// the old or the new KMS key); the last run finishes the job, removes
// what the killed runs left, and every file ends under the new key.
// Bounded: 12 kills or 40 s.
func TestRewrapSurvivesKill9(t *testing.T) {
	w := newWorld(t)
	w.create(10, 8, "alias/old")
	// Slow KMS calls widen the window of each step (the check's Decrypt
	// most: the backup exists during it), and make the whole job (80
	// files, 4 at a time) outlast the kills.
	const slow = "delay=Decrypt:40;delay=ReEncrypt:20;delay=DescribeKey:10"
	start := time.Now()
	kills, sawBackup := 0, false
	for i := 0; i < 12 && time.Since(start) < 40*time.Second; i++ {
		w.srv.SetFaults(slow)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, "--no-defaults", "--endpoint-url", w.url, "--parallel", "4", "rewrap", "--to", "alias/new", w.dir)
		cmd.Env = w.envs
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		} else {
			// Every other round, the kill lands while a backup exists:
			// as soon as one appears (polled for at most 3 s).
			for t0 := time.Now(); time.Since(t0) < 3*time.Second; time.Sleep(2 * time.Millisecond) {
				if m, _ := filepath.Glob(filepath.Join(w.dir, "#sql-rewrap-backup-*", "aws-kms-key.*")); len(m) > 0 {
					break
				}
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		cancel()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			kills++
		}
		w.srv.SetFaults("") // the checks below at full speed
		// Nothing lost: each file is whole and opens to its key.
		s := keyfile.New(w.dir)
		entries, _ := s.Scan()
		if len(entries) != len(w.keys) {
			t.Fatalf("after kill %d: %d key files, want %d", kills, len(entries), len(w.keys))
		}
		for _, e := range entries {
			blob, err := s.Read(e.ID, e.Version)
			if err != nil {
				t.Fatalf("after kill %d: %v", kills, err)
			}
			if got := w.unwrap(blob, ""); !bytes.Equal(got, w.keys[keyfile.Name(e.ID, e.Version)]) {
				t.Fatalf("after kill %d: %s unwraps to another key", kills, keyfile.Name(e.ID, e.Version))
			}
		}
		if m, _ := filepath.Glob(filepath.Join(w.dir, "#sql-rewrap-backup-*", "aws-kms-key.*")); len(m) > 0 {
			sawBackup = true
		}
	}
	r := w.run("rewrap", "--to", "alias/new", w.dir)
	if r.code != 0 {
		t.Fatalf("the run after the kills: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	w.checkAll(arnB)
	if m, _ := filepath.Glob(filepath.Join(w.dir, "#sql-rewrap-backup-*")); len(m) != 0 {
		t.Errorf("backup directories left: %v", m)
	}
	// Only temporary key files may be left (the plugin removes them at
	// start); nothing else.
	des, _ := os.ReadDir(w.dir)
	temps := 0
	for _, de := range des {
		if _, _, ok := keyfile.ParseName(de.Name()); !ok {
			if !keyfile.IsTempName(de.Name()) {
				t.Errorf("unexpected %s", de.Name())
			}
			temps++
		}
	}
	t.Logf("%d kills in %v; a killed run had left backups: %v; %d temporary files left; last run: %s%s", kills, time.Since(start).Round(time.Millisecond),
		sawBackup, temps, r.stdout, withoutEndpointWarning(r.stderr))
	if kills < 5 {
		t.Errorf("only %d runs were killed", kills)
	}
	if !sawBackup {
		t.Errorf("no kill landed while a backup existed: the test did not reach the window")
	}
}

// snapshot is the content and mode of every file below dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, _ := os.Lstat(p)
		data := ""
		if !d.IsDir() {
			b, _ := os.ReadFile(p)
			data = string(b)
		}
		out[p] = st.Mode().String() + st.ModTime().String() + data
		return nil
	})
	return out
}

// keygen, export and import as a DBA runs them: the recovery key and the
// bundle are 0600, the bundle restores lost key files, and a wrong
// recovery key or an existing bundle are refused with exit 2, changing
// nothing.
func TestExportImport(t *testing.T) {
	w := newWorld(t)
	w.create(2, 2, "alias/old")
	secure := t.TempDir()
	keyA, keyB := filepath.Join(secure, "a.key"), filepath.Join(secure, "b.key")
	r := w.run("keygen", "--output", keyA)
	recipient := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(recipient, "age1") {
		t.Fatalf("keygen: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	if st, err := os.Stat(keyA); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("recovery key: %v %v", st, err)
	}
	if r := w.run("keygen", "--output", keyA); r.code != 2 || !strings.Contains(r.stderr, "file exists") {
		t.Fatalf("keygen over an existing key: exit %d, %q", r.code, r.stderr)
	}
	w.run("keygen", "--output", keyB)
	bundle := filepath.Join(secure, "keys.age")
	r = w.run("export", "--recipient", recipient, "--output", bundle, w.dir)
	if r.code != 0 || r.stdout != fmt.Sprintf("sealed 4 key versions of %s into %s for 1 recipient(s); 0 KMS calls throttled and retried\n", w.dir, bundle) {
		t.Fatalf("export: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	if st, _ := os.Stat(bundle); st.Mode().Perm() != 0o600 {
		t.Fatalf("bundle mode %v", st.Mode())
	}
	if r := w.run("export", "--recipient", recipient, "--output", bundle, w.dir); r.code != 2 || !strings.Contains(r.stderr, "--replace") {
		t.Fatalf("export over the bundle: exit %d, %q", r.code, r.stderr)
	}
	if r := w.run("export", "--recipient", "age1notakey", "--output", bundle+"2", w.dir); r.code != 2 || !strings.Contains(r.stderr, "--recipient") {
		t.Fatalf("export to a bad recipient: exit %d, %q", r.code, r.stderr)
	}

	// Two key files lost; a wrong recovery key changes nothing; the right
	// one writes them back as they were.
	lost, _ := os.ReadFile(filepath.Join(w.dir, "aws-kms-key.1.2"))
	os.Remove(filepath.Join(w.dir, "aws-kms-key.1.2"))
	os.Remove(filepath.Join(w.dir, "aws-kms-key.2.1"))
	before := snapshot(t, w.dir)
	r = w.run("import", "--bundle", bundle, "--identity", keyB, w.dir)
	if r.code != 2 || !strings.Contains(r.stderr, "sealed for another recovery key") {
		t.Fatalf("import with the wrong recovery key: exit %d, %q", r.code, r.stderr)
	}
	if after := snapshot(t, w.dir); len(after) != len(before) {
		t.Fatalf("the wrong recovery key changed the directory: %v", after)
	}
	r = w.run("import", "--bundle", bundle, "--identity", keyA, w.dir)
	if r.code != 0 || !strings.HasSuffix(r.stdout, ": 2 written, 2 already present, 0 failed\n") {
		t.Fatalf("import: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	if back, _ := os.ReadFile(filepath.Join(w.dir, "aws-kms-key.1.2")); !bytes.Equal(back, lost) {
		t.Fatal("aws-kms-key.1.2 came back different")
	}
	w.checkAll(arnA)
}

// fixture reads a file written by a real mariadbd
// (internal/datafiles/testdata; .gz ones unpacked).
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "datafiles", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		z, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(z); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// dataDir writes a datadir's data files into dir: the redo log (key 1
// version 1) and d/t5.ibd (key 5; its page 1 on version 3).
func dataDir(t *testing.T, dir string) {
	t.Helper()
	page := bytes.Repeat([]byte{0x5a}, 16384)
	binary.BigEndian.PutUint32(page, 3)     // key version (full_crc32)
	binary.BigEndian.PutUint32(page[4:], 1) // page number
	binary.BigEndian.PutUint32(page[16380:], crc32.Checksum(page[:16380], crc32.MakeTable(crc32.Castagnoli)))
	if err := os.MkdirAll(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"ib_logfile0": fixture(t, "ib_logfile0-enc11.header"),
		"d/t5.ibd":    append(fixture(t, "t5.ibd-page0.gz"), page...),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// verify (and list --data-files) read the data files of a datadir: a version they need
// without its key file (the latest of key 5, which no gap shows) fails,
// naming the data file and the key file; with the key files elsewhere,
// --datadir names the data.
func TestVerifyDataFiles(t *testing.T) {
	w := newWorld(t)
	w.create(5, 2, "alias/old")
	dataDir(t, w.dir)
	missing := fmt.Sprintf("mariadb-aws-keys: MISSING key file aws-kms-key.5.3: d/t5.ibd in %s need aws-kms-key.5.3 (key 5 version 3), which is not in %s: their data cannot be read without it; copy it from", w.dir, w.dir)
	r := w.run("verify", w.dir)
	if r.code != 1 || !strings.Contains(r.stderr, missing) ||
		r.stdout != fmt.Sprintf("verified 10 key files in %s: 10 ok, 0 failed; 0 KMS calls throttled and retried\n"+
			"data files in %s: 1 InnoDB tablespaces (1 encrypted), 0 Aria tables (0 encrypted), redo log on key 1 version 1, 0 binary logs: 2 key versions needed, 1 missing, 0 files not read\n", w.dir, w.dir) {
		t.Fatalf("missing latest version: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = w.run("list", "--data-files", w.dir)
	if r.code != 1 || !strings.Contains(r.stderr, missing) || !strings.Contains(r.stdout, "2 key versions needed, 1 missing") {
		t.Fatalf("list --data-files: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// list is a quick look: no data file is read unless asked.
	if r = w.run("list", w.dir); r.code != 0 || strings.Contains(r.stdout, "data files") || withoutEndpointWarning(r.stderr) != "" {
		t.Fatalf("list: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r = w.run("verify", "--no-data-files", w.dir); r.code != 0 || strings.Contains(r.stdout, "data files") {
		t.Fatalf("--no-data-files: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = w.run("verify", "--json", w.dir)
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 1 {
		t.Fatalf("--json: exit %d, %v: %q", r.code, err, r.stdout)
	}
	d := v["data_files"].(map[string]any)
	checkFields(t, "data_files", d, "directory innodb_tablespaces aria_tables redo_log binlogs needed errors missing")
	checkFields(t, "data_files.missing", d["missing"].([]any)[0].(map[string]any), "key_id key_version file used_by message")
	checkFields(t, "data_files.needed", d["needed"].([]any)[0].(map[string]any), "key_id key_version files")
	checkFields(t, "data_files.innodb_tablespaces", d["innodb_tablespaces"].([]any)[0].(map[string]any),
		"file space_id encrypted key_id min_key_version key_versions pages unreadable_pages")

	// The key files apart from the data (keyfile_dir): --datadir.
	data := t.TempDir()
	dataDir(t, data)
	os.RemoveAll(filepath.Join(w.dir, "d"))
	os.Remove(filepath.Join(w.dir, "ib_logfile0"))
	if r = w.run("verify", w.dir); r.code != 0 || strings.Contains(r.stdout, "data files") {
		t.Fatalf("a key directory only: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = w.run("verify", "--datadir", data, w.dir)
	if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("MISSING key file aws-kms-key.5.3: d/t5.ibd in %s need aws-kms-key.5.3 (key 5 version 3), which is not in %s", data, w.dir)) {
		t.Fatalf("--datadir: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = w.run("verify", "--datadir", t.TempDir(), w.dir)
	if r.code != 2 || !strings.Contains(r.stderr, "holds no MariaDB data files (ibdata1, ib_logfile0 or DATABASE/*.ibd)") {
		t.Fatalf("--datadir without data: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// The key file copied back: all found.
	blob, err := w.client.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/old", "AES_128")
	if err != nil {
		t.Fatal(err)
	}
	if err := keyfile.New(w.dir).Create(5, 3, blob); err != nil {
		t.Fatal(err)
	}
	if r = w.run("verify", "--datadir", data, w.dir); r.code != 0 || !strings.Contains(r.stdout, "2 key versions needed, 0 missing") {
		t.Fatalf("all there: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
