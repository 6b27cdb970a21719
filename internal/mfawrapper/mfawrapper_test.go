package mfawrapper

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/mariadb-go/aws_key_management/internal/kmstest"
)

const (
	serial = "arn:aws:iam::111122223333:mfa/dba"
	code   = "314159"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "iam-kms-wrapper.config")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, "# the guide's file\n[kms]\nkms_mfa_id = "+serial+"\nkms_mfa_socket = /tmp/kms_mfa_socket\n[other]\nx = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{MFASerial: serial, FIFO: "/tmp/kms_mfa_socket", CodeTimeout: DefaultCodeTimeout, SessionDuration: DefaultSessionDuration}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	c, err = LoadConfig(writeConfig(t, "[kms]\nkms_mfa_id="+serial+"\nkms_mfa_socket=/run/x/fifo\nkms_mfa_timeout = 5\nkms_session_duration = 129600\nkms_mfa_socket_group = root\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.CodeTimeout != 5*time.Second || c.SessionDuration != 129600*time.Second || c.FIFOGroup != "root" {
		t.Errorf("optional settings: %+v", c)
	}

	base := "[kms]\nkms_mfa_id = " + serial + "\nkms_mfa_socket = /tmp/f\n"
	for _, tc := range []struct{ body, want string }{
		{"[kms]\nkms_mfa_socket = /tmp/f\n", "kms_mfa_id is missing"},
		{"[kms]\nkms_mfa_id =\nkms_mfa_socket = /tmp/f\n", "kms_mfa_id has no value"},
		{"[kms]\nkms_mfa_id = " + serial + "\n", "kms_mfa_socket is missing"},
		{"[kms]\nkms_mfa_id = short\nkms_mfa_socket = /tmp/f\n", `kms_mfa_id "short" is not an MFA device ARN`},
		{"[kms]\nkms_mfa_id = " + serial + "\nkms_mfa_socket = tmp/f\n", "must be an absolute path"},
		{base + "kms_mfa_code = 123456\n", `unknown setting "kms_mfa_code"`},
		{base + "kms_session_duration = 899\n", `kms_session_duration = "899": want whole seconds from 900 to 129600`},
		{base + "kms_session_duration = 129601\n", "want whole seconds from 900 to 129600"},
		{base + "kms_mfa_timeout = soon\n", `kms_mfa_timeout = "soon"`},
		{base + "kms_mfa_socket_group = no-such-group-akm\n", `kms_mfa_socket_group "no-such-group-akm"`},
		{"[kms\nkms_mfa_id = x\n", "closing ']'"},
	} {
		p := writeConfig(t, tc.body)
		_, err := LoadConfig(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: got %v, want an error naming the file and %q", tc.body, err, tc.want)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "none") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadConfig(""); err == nil || !strings.Contains(err.Error(), "--config=FILE") {
		t.Errorf("no file: %v", err)
	}
}

// The example config the Debian package ships (and the README shows)
// loads as it is: the guide's two settings, the defaults for the rest.
func TestShippedExampleConfig(t *testing.T) {
	c, err := LoadConfig("../../support-files/systemd/iam-kms-wrapper.config")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{MFASerial: "arn:aws:iam::111122223333:mfa/MDBEnc", FIFO: "/run/mysqld/kms_mfa_socket",
		CodeTimeout: DefaultCodeTimeout, SessionDuration: DefaultSessionDuration}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
}

// writeFIFO writes s to path once a reader has it open (a writer's
// open blocks until then), as `echo 123456 > path` does.
func writeFIFO(t *testing.T, path, s string) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Errorf("opening the FIFO to write: %v", err)
			return
		}
		defer f.Close()
		f.WriteString(s)
	}()
	return &wg
}

func TestFIFO(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"123456\n", "123456", ""},
		{"123456", "123456", ""},
		{"123456\r\n", "123456", ""},
		{"12345\n", "", "want six digits"},
		{"1234567\n", "", "want six digits"},
		{"12a456\n", "", "want six digits"},
		{"123456\n654321\n", "", "more than one line"},
		{strings.Repeat("1", 100), "", "more than 64 bytes"},
	} {
		path := filepath.Join(t.TempDir(), "fifo")
		f, err := CreateFIFO(path, "")
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Lstat(path)
		if err != nil || st.Mode().Type() != os.ModeNamedPipe || st.Mode().Perm() != 0o600 {
			t.Fatalf("FIFO: %v %v", st.Mode(), err)
		}
		wg := writeFIFO(t, path, tc.in)
		got, err := f.ReadCode(context.Background(), 10*time.Second)
		wg.Wait()
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: got %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "12a456") {
			t.Errorf("the error shows what was written: %v", err)
		}
		f.Close()
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("FIFO still there after Close: %v", err)
		}
	}
}

func TestFIFOTimeoutAndCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	f, err := CreateFIFO(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadCode(context.Background(), 300*time.Millisecond); !errors.Is(err, ErrCodeTimeout) || !strings.Contains(err.Error(), "echo 123456 > "+path) {
		t.Errorf("timeout: %v", err)
	}
	// A writer that opens and writes nothing, then goes: still a timeout.
	wg := writeFIFO(t, path, "")
	if _, err := f.ReadCode(context.Background(), 300*time.Millisecond); !errors.Is(err, ErrCodeTimeout) {
		t.Errorf("empty writer: %v", err)
	}
	wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := f.ReadCode(ctx, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestCreateFIFORefusals(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep me"), 0o644)
	if _, err := CreateFIFO(file, ""); err == nil || !strings.Contains(err.Error(), "a regular file is already there") {
		t.Errorf("regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Errorf("the file was changed")
	}
	if _, err := CreateFIFO(dir, ""); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(file, link)
	if _, err := CreateFIFO(link, ""); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlink: %v", err)
	}
	if _, err := CreateFIFO(filepath.Join(dir, "no", "fifo"), ""); err == nil {
		t.Errorf("missing directory: no error")
	}
	// A FIFO left behind (mode 0666) is replaced by one of mode 0600.
	old := filepath.Join(dir, "old")
	if err := syscall.Mkfifo(old, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(old, 0o666)
	f, err := CreateFIFO(old, "")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, _ := os.Lstat(old); st.Mode().Perm() != 0o600 {
		t.Errorf("replaced FIFO mode %v", st.Mode())
	}
	// With a group: 0620 and that group.
	g, err := CreateFIFO(filepath.Join(dir, "g"), "root")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	st, _ := os.Lstat(g.Path)
	if st.Mode().Perm() != 0o620 || st.Sys().(*syscall.Stat_t).Gid != 0 {
		t.Errorf("group FIFO: mode %v gid %d", st.Mode(), st.Sys().(*syscall.Stat_t).Gid)
	}
}

func TestEnviron(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	env := Environ([]string{"PATH=/bin", "AWS_ACCESS_KEY_ID=old", "AWS_SESSION_TOKEN=old", "HOME=/root"},
		Session{AccessKeyID: "ASIAX", SecretAccessKey: "s", SessionToken: "t", Expires: exp})
	want := []string{"PATH=/bin", "HOME=/root", "AWS_ACCESS_KEY_ID=ASIAX", "AWS_SECRET_ACCESS_KEY=s", "AWS_SESSION_TOKEN=t", "AWS_CREDENTIAL_EXPIRATION=2030-01-02T03:04:05Z"}
	if strings.Join(env, " ") != strings.Join(want, " ") {
		t.Errorf("got %q", env)
	}
}

// TestPrepare runs the whole wrapper but the exec against the loopback
// STS of internal/kmstest with a real SDK client.
func TestPrepare(t *testing.T) {
	emu, ts, url := kmstest.Start(kmstest.Config{MFADevices: map[string]string{serial: code}})
	defer ts.Close()
	defer emu.Close()
	api := sts.NewFromConfig(aws.Config{
		Region:      kmstest.DefaultRegion,
		Credentials: credentials.NewStaticCredentialsProvider(kmstest.DefaultAccessKeyID, kmstest.DefaultSecretAccessKey, ""),
	}, func(o *sts.Options) { o.BaseEndpoint = aws.String(url) })
	cfg := Config{MFASerial: serial, FIFO: filepath.Join(t.TempDir(), "fifo"), CodeTimeout: 10 * time.Second, SessionDuration: 3600 * time.Second}

	var lines []string
	var mu sync.Mutex
	logf := func(s string) { mu.Lock(); lines = append(lines, s); mu.Unlock() }
	for _, tc := range []struct{ written, err string }{
		{code + "\n", ""},
		{"000000\n", "MultiFactorAuthentication failed with invalid MFA one time pass code"},
		{"abc\n", "want six digits"},
	} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < 200; i++ {
				if _, err := os.Lstat(cfg.FIFO); err == nil {
					writeFIFO(t, cfg.FIFO, tc.written).Wait()
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Errorf("no FIFO appeared")
		}()
		before := time.Now()
		env, err := Prepare(context.Background(), cfg, api, []string{"PATH=/bin"}, logf)
		<-done
		if _, serr := os.Lstat(cfg.FIFO); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%q: FIFO left behind", tc.written)
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: got %v, want %q", tc.written, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			got[k] = v
		}
		exp, perr := time.Parse(time.RFC3339, got["AWS_CREDENTIAL_EXPIRATION"])
		if !strings.HasPrefix(got["AWS_ACCESS_KEY_ID"], "ASIA") || got["AWS_SESSION_TOKEN"] == "" || got["PATH"] != "/bin" ||
			perr != nil || exp.Sub(before) < 3590*time.Second || exp.Sub(before) > 3610*time.Second {
			t.Errorf("environment: %q (expiry %v)", env, perr)
		}
	}
	if !strings.Contains(strings.Join(lines, "\n"), "waiting up to 10s for the code of MFA device "+serial) {
		t.Errorf("log: %q", lines)
	}
	for _, l := range lines {
		if strings.Contains(l, code) {
			t.Errorf("the code is in a log line: %q", l)
		}
	}
}
