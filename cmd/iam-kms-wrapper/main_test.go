package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mariadb-go/aws_key_management/internal/buildinfo"
)

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.config")
	os.WriteFile(good, []byte("[kms]\nkms_mfa_id = arn:aws:iam::111122223333:mfa/dba\nkms_mfa_socket = "+dir+"/fifo\n"), 0o600)
	bad := filepath.Join(dir, "bad.config")
	os.WriteFile(bad, []byte("[kms]\nkms_mfa_id = arn:aws:iam::111122223333:mfa/dba\n"), 0o600)
	for _, tc := range []struct {
		args []string
		rc   int
		want string
	}{
		{[]string{"--config=" + good}, 2, "no command to start"},
		{[]string{"--bogus", "/bin/true"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"/bin/true"}, 2, "give --config=FILE"},
		{[]string{"--config=" + bad, "/bin/true"}, 2, "config file " + bad + ", [kms]: kms_mfa_socket is missing"},
		{[]string{"--config=" + good, "/no/such/mariadbd"}, 2, "command /no/such/mariadbd"},
	} {
		var stdout, stderr bytes.Buffer
		if rc := run(tc.args, &stdout, &stderr); rc != tc.rc || !strings.Contains(stderr.String(), tc.want) || stdout.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, rc, stderr.String(), tc.rc, tc.want)
		}
		if _, err := os.Lstat(filepath.Join(dir, "fifo")); err == nil {
			t.Errorf("%q: a FIFO was made", tc.args)
		}
	}
}

// --version prints the build the Makefile linked in (internal/buildinfo),
// in mariadb-aws-keys' format, and starts nothing; --help names it.
func TestVersionAndHelp(t *testing.T) {
	oldV, oldC := buildinfo.Version, buildinfo.Commit
	t.Cleanup(func() { buildinfo.Version, buildinfo.Commit = oldV, oldC })
	buildinfo.Version, buildinfo.Commit = "9.8.7", "0123456789ab-dirty"
	marker := filepath.Join(t.TempDir(), "started")
	for _, args := range [][]string{{"--version"}, {"-version"}, {"--version", "/bin/touch", marker}} {
		var stdout, stderr bytes.Buffer
		rc := run(args, &stdout, &stderr)
		if want := "iam-kms-wrapper version 9.8.7 commit 0123456789ab-dirty\n"; rc != 0 || stdout.String() != want || stderr.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 0 and %q", args, rc, stdout.String(), stderr.String(), want)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("--version ran the command")
	}
	var stdout, stderr bytes.Buffer
	if rc := run([]string{"--help"}, &stdout, &stderr); rc != 0 || !strings.Contains(stdout.String(), "iam-kms-wrapper --version") ||
		!strings.Contains(stdout.String(), "aws-key-management-mfa.conf") || stderr.Len() != 0 {
		t.Errorf("--help: exit %d, stdout %q, stderr %q", rc, stdout.String(), stderr.String())
	}
}
