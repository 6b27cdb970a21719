package optfile

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

const sample = `# a Debian-like layout
[client-server]
socket = /run/mysqld/mysqld.sock
!includedir CONFD/

[client]
aws_key_management_region = not-for-the-server

[mysqld]
datadir		= /var/lib/mysql
plugin_load_add = aws_key_management
aws-key-management-master-key-id = "alias/mariadb # not a comment"
aws_key_management_region = eu-west-1   # a comment
skip-name-resolve
[MariaDB]
loose-aws-key-management-endpoint-url = 'https://kms.example:443'
aws_key_management_keyfile_dir = /srv/keys\sdir
`

func TestLoadServerGroups(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "my.cnf"), strings.ReplaceAll(sample, "CONFD", filepath.Join(dir, "conf.d")))
	write(t, filepath.Join(dir, "conf.d", "50-server.cnf"), "[server]\nplugin_load_add=file_key_management\naws_key_management_region = us-west-2\n")
	write(t, filepath.Join(dir, "conf.d", "60-later.cnf"), "[mysqld]\naws_key_management_log_level = Trace\n")
	write(t, filepath.Join(dir, "conf.d", "README"), "[mysqld]\naws_key_management_log_level = Off\n")
	o, err := Load(filepath.Join(dir, "my.cnf"), "", ServerGroups, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"socket":                           "/run/mysqld/mysqld.sock",
		"datadir":                          "/var/lib/mysql",
		"aws_key_management_master_key_id": "alias/mariadb # not a comment",
		"aws_key_management_region":        "eu-west-1", // the later line wins
		"skip_name_resolve":                "",
		"aws_key_management_endpoint_url":  "https://kms.example:443",
		"aws_key_management_keyfile_dir":   "/srv/keys dir",
		"aws_key_management_log_level":     "Trace", // only *.cnf files of the directory
	}
	for name, v := range want {
		if got, ok := o.Get(name); !ok || got != v {
			t.Errorf("%s = %q (%v), want %q", name, got, ok, v)
		}
	}
	if got := o.All("plugin-load-add"); !reflect.DeepEqual(got, []string{"file_key_management", "aws_key_management"}) {
		t.Errorf("plugin_load_add = %q", got)
	}
	if len(o.Files) != 3 {
		t.Errorf("files read: %v", o.Files)
	}
}

// The same files through the server's own reader, my_print_defaults
// (installed with the server by scripts/deps.sh): both must agree on the
// aws_key_management options.
func TestAgreesWithMyPrintDefaults(t *testing.T) {
	bin, err := exec.LookPath("my_print_defaults")
	if err != nil {
		t.Fatal("my_print_defaults is not installed (Debian's mariadb-client-core has it; run scripts/deps.sh)")
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "my.cnf"), strings.ReplaceAll(sample, "CONFD", filepath.Join(dir, "conf.d")))
	write(t, filepath.Join(dir, "conf.d", "50-server.cnf"), "[server]\naws_key_management_region = us-west-2\n")
	out, err := exec.Command(bin, "--defaults-file="+filepath.Join(dir, "my.cnf"), "--mariadbd").Output()
	if err != nil {
		t.Fatal(err)
	}
	o, err := Load(filepath.Join(dir, "my.cnf"), "", ServerGroups, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, value, _ := strings.Cut(strings.TrimPrefix(line, "--"), "=")
		if !strings.Contains(Canonical(name), "aws_key_management") {
			continue
		}
		seen++
		vals := o.All(name)
		if len(vals) == 0 || !contains(vals, value) {
			t.Errorf("my_print_defaults gives %s=%q; we read %q", name, value, vals)
		}
	}
	if seen < 4 {
		t.Fatalf("my_print_defaults printed %d aws_key_management options:\n%s", seen, out)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestDefaultFilesAndExtra(t *testing.T) {
	home := t.TempDir()
	write(t, filepath.Join(home, ".my.cnf"), "[mysqld]\naws_key_management_region = from-home\n")
	extra := filepath.Join(t.TempDir(), "extra.cnf")
	write(t, extra, "[mariadb]\naws_key_management_key_spec = AES_256\n")
	saved := DefaultFiles
	DefaultFiles = []string{filepath.Join(t.TempDir(), "missing.cnf"), "~/.my.cnf"}
	defer func() { DefaultFiles = saved }()
	o, err := Load("", extra, ServerGroups, home)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := o.Get("aws_key_management_region"); v != "from-home" {
		t.Errorf("region = %q", v)
	}
	if v, _ := o.Get("aws_key_management_key_spec"); v != "AES_256" {
		t.Errorf("key_spec = %q", v)
	}
}

func TestErrorsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"[mysqld\nx=1\n":                                  "my.cnf:1: a group name without its closing ']'",
		"[mysqld]\nx = 'open\n":                           "my.cnf:2: option x: a quoted value without its closing '",
		"[mysqld]\n!include missing.cnf\n":                "missing.cnf: no such file or directory",
		"[mysqld]\n!frobnicate x\n":                       "my.cnf:2: unknown directive !frobnicate",
		"[mysqld]\n= 3\n":                                 "my.cnf:2: an option without a name",
		"!include " + filepath.Join(dir, "my.cnf") + "\n": "includes nested more than 10 deep",
	}
	for text, want := range cases {
		p := filepath.Join(dir, "my.cnf")
		write(t, p, text)
		_, err := Load(p, "", ServerGroups, "")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", text, err, want)
		}
	}
	if _, err := Load(filepath.Join(dir, "none.cnf"), "", ServerGroups, ""); err == nil {
		t.Errorf("a missing --defaults-file is not an error")
	}
}
