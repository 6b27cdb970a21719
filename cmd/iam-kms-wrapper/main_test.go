package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		var stderr bytes.Buffer
		if rc := run(tc.args, &stderr); rc != tc.rc || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, rc, stderr.String(), tc.rc, tc.want)
		}
		if _, err := os.Lstat(filepath.Join(dir, "fifo")); err == nil {
			t.Errorf("%q: a FIFO was made", tc.args)
		}
	}
}
