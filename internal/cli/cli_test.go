package cli

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
)

// -pSECRET is the MariaDB clients' way; -p alone asks; "--" ends flags.
func TestPasswordArgs(t *testing.T) {
	in := []string{"list", "-psecret", "-p", "-p=x", "--password=y", "-S", "/s", "--", "-pdir"}
	want := []string{"list", "--password=secret", "-p", "-p=x", "--password=y", "-S", "/s", "--", "-pdir"}
	if got := passwordArgs(in); !reflect.DeepEqual(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
	if in[1] != "-psecret" {
		t.Errorf("the arguments were changed in place")
	}
}

func TestAge(t *testing.T) {
	for s, want := range map[int64]string{0: "0s", 59: "59s", 61: "1m1s", 3600 + 120: "1h2m", 3*86400 + 7200: "3d2h", -5: "future"} {
		if got := age(s); got != want {
			t.Errorf("age(%d) = %q, want %q", s, got, want)
		}
	}
}

// --password without a value asks; without a terminal that is a usage
// error that names the other ways.
func TestPasswordWithoutTerminal(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"--no-defaults", "list", "-p", "--socket", "/nonexistent", t.TempDir()},
		Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	if code != ExitUsage || !strings.Contains(errb.String(), "--password without a value asks on a terminal, and there is none") || out.Len() != 0 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	asked := ""
	code = Main(context.Background(), []string{"--no-defaults", "list", "-p", "--socket", "/nonexistent", t.TempDir()},
		Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" },
			ReadPassword: func(p string) (string, error) { asked = p; return "typed", nil }})
	// The directory has no key files: the password was asked first.
	if asked != "Enter password: " || code != ExitUsage {
		t.Errorf("asked %q, exit %d", asked, code)
	}
}
