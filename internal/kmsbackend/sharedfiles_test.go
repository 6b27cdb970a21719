package kmsbackend

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/mariadb-go/aws_key_management/internal/kmstest"
)

// otherOwner makes path belong to someone else than the checking user:
// as root it gives the file to nobody (65534); otherwise it returns an
// euid that is not the file's owner (a user checking a file of ours).
// It returns the euid to check with.
func otherOwner(t *testing.T, path string) int {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Lchown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		return 0
	}
	return os.Geteuid() + 1
}

// safeDir is a fresh directory whose whole path passes checkDirChain
// (t.TempDir is 0700 under the sticky /tmp, or under TMPDIR).
func safeDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := checkDirChain(d, "test", d, os.Geteuid(), "me"); err != nil {
		t.Fatalf("the test's temporary directory does not pass the check itself (set TMPDIR): %v", err)
	}
	return d
}

func writeMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("[default]\nregion = eu-west-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // not subject to the umask
		t.Fatal(err)
	}
}

// fileIn makes dir (and its parents), writes dir/credentials at 0600,
// then sets dir's mode; it returns the file's path.
func fileIn(t *testing.T, dir string, dirMode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "credentials")
	writeMode(t, p, 0o600)
	if err := os.Chmod(dir, dirMode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckSharedFile(t *testing.T) {
	me := os.Geteuid()
	tests := []struct {
		name string
		// setup returns the path to check and the euid to check it with.
		setup func(t *testing.T, d string) (string, int)
		// refused: the part of the path the refusal names ("" = passes);
		// words: what the refusal or the warning must say.
		refused string
		warn    bool
		words   []string
	}{
		{name: "0600 of the user", setup: func(t *testing.T, d string) (string, int) {
			p := filepath.Join(d, "credentials")
			writeMode(t, p, 0o600)
			return p, me
		}},
		{name: "0640 group may read", setup: func(t *testing.T, d string) (string, int) {
			p := filepath.Join(d, "credentials")
			writeMode(t, p, 0o640)
			return p, me
		}},
		{name: "0644 others may read: a warning", warn: true, words: []string{"mode 0644", "read by every local user", "chmod 600"},
			setup: func(t *testing.T, d string) (string, int) {
				p := filepath.Join(d, "credentials")
				writeMode(t, p, 0o644)
				return p, me
			}},
		{name: "0666 world-writable", refused: "credentials", words: []string{"mode 0666", "credential_process", "chmod 600"},
			setup: func(t *testing.T, d string) (string, int) {
				p := filepath.Join(d, "credentials")
				writeMode(t, p, 0o666)
				return p, me
			}},
		{name: "0620 group-writable", refused: "credentials", words: []string{"mode 0620", "group or other users can write"},
			setup: func(t *testing.T, d string) (string, int) {
				p := filepath.Join(d, "credentials")
				writeMode(t, p, 0o620)
				return p, me
			}},
		{name: "another user's file", refused: "credentials", words: []string{"belongs to neither root nor", "chown "},
			setup: func(t *testing.T, d string) (string, int) {
				p := filepath.Join(d, "credentials")
				writeMode(t, p, 0o600)
				return p, otherOwner(t, p)
			}},
		{name: "root's file", setup: func(t *testing.T, d string) (string, int) {
			p := filepath.Join(d, "credentials")
			writeMode(t, p, 0o600)
			if me != 0 {
				// Not root: a root-owned file of the system stands in.
				return "/etc/passwd", me
			}
			return p, 4242 // a server user who is not root reads root's file
		}, warn: me != 0},
		{name: "missing file: not read, passes", setup: func(t *testing.T, d string) (string, int) {
			return filepath.Join(d, "nothing-here"), me
		}},
		{name: "/dev/null", setup: func(t *testing.T, d string) (string, int) { return os.DevNull, me }},
		{name: "a FIFO", refused: "fifo", words: []string{"not a regular file"},
			setup: func(t *testing.T, d string) (string, int) {
				p := filepath.Join(d, "fifo")
				if err := syscall.Mkfifo(p, 0o600); err != nil {
					t.Fatal(err)
				}
				return p, me
			}},
		{name: "parent directory 0777", refused: ".aws", words: []string{"its directory", "mode 0777", "chmod go-w"},
			setup: func(t *testing.T, d string) (string, int) {
				p := fileIn(t, filepath.Join(d, ".aws"), 0o777)
				return p, me
			}},
		{name: "grandparent directory 0770", refused: "top", words: []string{"mode 0770"},
			setup: func(t *testing.T, d string) (string, int) {
				p := fileIn(t, filepath.Join(d, "top", ".aws"), 0o700)
				if err := os.Chmod(filepath.Join(d, "top"), 0o770); err != nil {
					t.Fatal(err)
				}
				return p, me
			}},
		{name: "sticky directory 1777 (like /tmp)", setup: func(t *testing.T, d string) (string, int) {
			p := fileIn(t, filepath.Join(d, "sticky"), 0o777|os.ModeSticky)
			return p, me
		}},
		{name: "another user's directory", refused: "theirs", words: []string{"belongs to neither root nor"},
			setup: func(t *testing.T, d string) (string, int) {
				dir := filepath.Join(d, "theirs")
				p := fileIn(t, dir, 0o755)
				euid := otherOwner(t, dir)
				if euid != 0 {
					// Not root: the file is ours, the checker someone else;
					// the file's own owner is refused first.
					return p, euid
				}
				return p, 0
			}},
		{name: "symlink into a world-writable directory", refused: "open", words: []string{"its directory", "mode 0777"},
			setup: func(t *testing.T, d string) (string, int) {
				target := fileIn(t, filepath.Join(d, "open"), 0o777)
				link := filepath.Join(d, "credentials")
				if err := os.Symlink(target, link); err != nil {
					t.Fatal(err)
				}
				return link, me
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := safeDir(t)
			p, euid := tc.setup(t, d)
			w, err := checkSharedFile(p, "AWS credentials file (from test)", euid)
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if (w != "") != tc.warn {
					t.Fatalf("warning %q, want one: %v", w, tc.warn)
				}
				if w != "" && !strings.Contains(w, p) {
					t.Errorf("the warning %q does not name %s", w, p)
				}
				for _, word := range tc.words {
					if !strings.Contains(w, word) {
						t.Errorf("the warning %q does not say %q", w, word)
					}
				}
				return
			}
			var ue *UnsafeFileError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v (warning %q), want an UnsafeFileError naming %s", err, w, tc.refused)
			}
			if !strings.Contains(ue.Path, tc.refused) {
				t.Errorf("refused %s, want a path with %q", ue.Path, tc.refused)
			}
			msg := err.Error()
			abs, _ := filepath.Abs(p)
			for _, word := range append([]string{"refusing the AWS credentials file (from test) " + abs, ue.Path, "owner ", "fix: "}, tc.words...) {
				if !strings.Contains(msg, word) {
					t.Errorf("the refusal %q does not say %q", msg, word)
				}
			}
			if strings.ContainsAny(msg, "\n\r") {
				t.Errorf("the refusal spans lines: %q", msg)
			}
		})
	}
}

// The files named for the SDK are the ones checked: the credentials file
// of CredentialsFile, else ~/.aws/credentials, and AWS_CONFIG_FILE, else
// ~/.aws/config.
func TestPickSharedFiles(t *testing.T) {
	home, data := t.TempDir(), t.TempDir()
	env := map[string]string{"HOME": home}
	getenv := func(k string) string { return env[k] }
	f := pickSharedFiles(getenv, data)
	want := sharedFiles{filepath.Join(home, ".aws", "credentials"), "home directory", filepath.Join(home, ".aws", "config"), "home directory"}
	if f != want {
		t.Fatalf("nothing set: %+v, want %+v", f, want)
	}
	if err := os.MkdirAll(filepath.Join(data, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeMode(t, filepath.Join(data, ".aws", "credentials"), 0o600)
	if f = pickSharedFiles(getenv, data); f.credentials != filepath.Join(data, ".aws", "credentials") || f.credentialsWhy != "datadir" {
		t.Fatalf("datadir file: %+v", f)
	}
	env["AWS_CONFIG_FILE"], env["AWS_SHARED_CREDENTIALS_FILE"] = "/x/config", "/x/credentials"
	want = sharedFiles{"/x/credentials", "AWS_SHARED_CREDENTIALS_FILE", "/x/config", "AWS_CONFIG_FILE"}
	if f = pickSharedFiles(getenv, data); f != want {
		t.Fatalf("variables: %+v, want %+v", f, want)
	}
}

// credentialProcessSetup writes a profile whose credential_process
// touches marker and prints the emulator's credentials, at mode, as
// the only credentials source, and returns the marker's path.
func credentialProcessSetup(t *testing.T, dir string, mode os.FileMode) (file, marker string) {
	t.Helper()
	marker = filepath.Join(dir, "process-ran")
	script := filepath.Join(dir, "creds.sh")
	body := fmt.Sprintf("#!/bin/sh\ntouch %s\nprintf '{\"Version\":1,\"AccessKeyId\":\"AKIAEMULATORTEST\",\"SecretAccessKey\":\"emulator-secret\"}'\n", marker)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "credentials")
	if err := os.WriteFile(file, []byte("[default]\ncredential_process = "+script+" --secret-arg s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, mode); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
	return file, marker
}

// A planted world-writable credentials file with credential_process
// stops New, and the command never runs; the same file at 0600 is used:
// the command runs on the first request (the control), and the log line
// names the program, not its arguments.
func TestNewCredentialProcessFile(t *testing.T) {
	_, url := emulatorEnv(t, kmstest.Config{})
	dir := safeDir(t)
	file, marker := credentialProcessSetup(t, dir, 0o666)
	c, err := New(context.Background(), Config{EndpointURL: url, RequestTimeout: 2 * time.Second})
	var ue *UnsafeFileError
	if !errors.As(err, &ue) || ue.Path != file {
		t.Fatalf("New with a world-writable %s: client %v, err %v; want a refusal naming it", file, c, err)
	}
	if !strings.Contains(err.Error(), "mode 0666") {
		t.Errorf("refusal %q does not give the mode", err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the credential_process command ran (%s: %v)", marker, err)
	}

	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = New(context.Background(), Config{EndpointURL: url, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "creds.sh")
	if want := fmt.Sprintf(`profile "default" gets them by running %s (credential_process; arguments not shown)`, script); !strings.Contains(c.Description, want) {
		t.Errorf("Description %q does not say %q", c.Description, want)
	}
	if strings.Contains(c.Description, "s3cr3t") {
		t.Errorf("Description %q shows the command's arguments", c.Description)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the command ran before any request (%v)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.GenerateDataKeyWithoutPlaintext(ctx, "alias/mariadb-a", "AES_128"); err != nil {
		t.Fatalf("a request with the process's credentials: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the control: the command did not run for a 0600 file: %v", err)
	}
}

// A config file (AWS_CONFIG_FILE) is checked like the credentials file;
// a 0644 one passes with a warning.
func TestNewConfigFileChecked(t *testing.T) {
	_, url := emulatorEnv(t, kmstest.Config{})
	dir := safeDir(t)
	conf := filepath.Join(dir, "config")
	writeMode(t, conf, 0o646)
	t.Setenv("AWS_CONFIG_FILE", conf)
	_, err := New(context.Background(), Config{EndpointURL: url})
	var ue *UnsafeFileError
	if !errors.As(err, &ue) || ue.Path != conf || !strings.Contains(err.Error(), "AWS config file (from AWS_CONFIG_FILE)") {
		t.Fatalf("New with a world-writable config file: %v", err)
	}
	if err := os.Chmod(conf, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), Config{EndpointURL: url})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range c.Warnings {
		found = found || (strings.Contains(w, conf) && strings.Contains(w, "read by every local user"))
	}
	if !found {
		t.Errorf("no warning about the readable %s in %q", conf, c.Warnings)
	}
}

func TestFirstWord(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/get-creds --profile x": "/usr/bin/get-creds",
		`  "/opt/my tools/creds" a b`:    "/opt/my tools/creds",
		"'/x y/z'":                       "/x y/z",
		"plain":                          "plain",
		"":                               "",
	} {
		if got := firstWord(in); got != want {
			t.Errorf("firstWord(%q) = %q, want %q", in, got, want)
		}
	}
}

// The program is named only when the process is what the SDK will use.
func TestCredentialProcessNamed(t *testing.T) {
	keys := aws.Credentials{AccessKeyID: "AKIA", SecretAccessKey: "s"}
	proc := config.SharedConfig{Profile: "p", CredentialProcess: "/bin/get-creds --secret x"}
	role := config.SharedConfig{Profile: "role", RoleARN: "arn:aws:iam::1:role/r", Source: &proc}
	withKeys := proc
	withKeys.Credentials = keys
	for _, tc := range []struct {
		name             string
		sources          []interface{}
		profile, program string
	}{
		{"profile with credential_process", []interface{}{config.EnvConfig{}, proc}, "p", "/bin/get-creds"},
		{"pointers", []interface{}{&config.EnvConfig{}, &proc}, "p", "/bin/get-creds"},
		{"role from a source_profile with it", []interface{}{config.EnvConfig{}, role}, "p", "/bin/get-creds"},
		{"keys in the environment come first", []interface{}{config.EnvConfig{Credentials: keys}, proc}, "", ""},
		{"static keys in the profile come first", []interface{}{config.EnvConfig{}, withKeys}, "", ""},
		{"no shared config", []interface{}{config.EnvConfig{}}, "", ""},
	} {
		if profile, program := credentialProcess(tc.sources); profile != tc.profile || program != tc.program {
			t.Errorf("%s: (%q, %q), want (%q, %q)", tc.name, profile, program, tc.profile, tc.program)
		}
	}
}
