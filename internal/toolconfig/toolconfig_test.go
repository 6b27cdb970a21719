package toolconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/optfile"
)

func write(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func noEnv(string) string { return "" }

const cnf = `[client]
socket = /run/c.sock
user = dba
password = "from file"
[client-server]
port = 3307
[mysqld]
datadir = /var/lib/mysql
socket = /run/server.sock
aws_key_management_master_key_id = alias/mariadb
aws-key-management-region = eu-central-1
loose-aws-key-management-endpoint-url = https://kms.example:443
aws_key_management_request_timeout = 1500
[mariadb]
aws_key_management_keyfile_dir = keys
`

// The settings come from the server's groups of the option files, as
// the plugin gets them; the connection from the client groups.
func TestResolveFromOptionFiles(t *testing.T) {
	p := write(t, filepath.Join(t.TempDir(), "my.cnf"), cnf)
	s, err := Resolve(Flags{DefaultsFile: p}, noEnv, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyDir != "/var/lib/mysql/keys" || s.KeyDirFrom != "aws_key_management_keyfile_dir (option files)" || s.DataDir != "/var/lib/mysql" ||
		s.MasterKeyID != "alias/mariadb" || s.KMS.Region != "eu-central-1" || s.KMS.EndpointURL != "https://kms.example:443" ||
		s.KMS.RequestTimeout != 1500*time.Millisecond || s.KMS.DataDir != "/var/lib/mysql" {
		t.Errorf("settings %+v", s)
	}
	if c := s.Conn; c.Socket != "/run/c.sock" || c.User != "dba" || c.Password != "from file" || c.Port != 3307 {
		t.Errorf("connection %+v", c)
	}
	if len(s.Files) != 1 || s.Files[0] != p {
		t.Errorf("files %v", s.Files)
	}
}

// The command line wins; MYSQL_PWD wins over the file's password.
func TestResolveFlagsWin(t *testing.T) {
	p := write(t, filepath.Join(t.TempDir(), "my.cnf"), cnf)
	pw := "flag"
	s, err := Resolve(Flags{DefaultsFile: p, KeyfileDir: "/k", DataDir: "/d", Region: "us-west-2", EndpointURL: "http://127.0.0.1:1",
		RequestTimeout: "2s", Socket: "/s", User: "u"}, func(k string) string {
		if k == "MYSQL_PWD" {
			return "env"
		}
		return ""
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyDir != "/k" || s.KeyDirFrom != "--keyfile-dir" || s.DataDir != "/d" || s.KMS.Region != "us-west-2" || s.KMS.RequestTimeout != 2*time.Second ||
		s.Conn.Socket != "/s" || s.Conn.User != "u" || s.Conn.Password != "env" {
		t.Errorf("%+v", s)
	}
	s, _ = Resolve(Flags{DefaultsFile: p, Dir: "/pos", Password: &pw}, noEnv, "")
	if s.KeyDir != "/pos" || s.KeyDirFrom != "the DIR argument" || s.Conn.Password != "flag" {
		t.Errorf("%+v", s)
	}
	// Without keyfile_dir the datadir is the key directory.
	q := write(t, filepath.Join(t.TempDir(), "my.cnf"), "[mysqld]\ndatadir=/data\n")
	if s, _ = Resolve(Flags{DefaultsFile: q}, noEnv, ""); s.KeyDir != "/data" || s.KeyDirFrom != "the datadir" || s.Conn.Socket != DefaultSocket {
		t.Errorf("%+v", s)
	}
}

func TestResolveErrors(t *testing.T) {
	dir := t.TempDir()
	DefaultDataDir = filepath.Join(dir, "none")
	defer func() { DefaultDataDir = "/var/lib/mysql" }()
	cases := map[string]struct {
		f    Flags
		want string
	}{
		"relative keyfile_dir, no datadir": {Flags{DefaultsFile: write(t, filepath.Join(dir, "a.cnf"), "[mysqld]\naws_key_management_keyfile_dir=keys\n")},
			"is relative to the datadir, which no option names"},
		"bad timeout": {Flags{DefaultsFile: write(t, filepath.Join(dir, "b.cnf"), "[mysqld]\naws_key_management_request_timeout=soon\n")},
			"aws_key_management_request_timeout (option files) = \"soon\""},
		"bad flag timeout": {Flags{NoDefaults: true, RequestTimeout: "-5"}, "--request-timeout = \"-5\": out of range"},
		"missing file":     {Flags{DefaultsFile: filepath.Join(dir, "none.cnf")}, "none.cnf: no such file"},
		"both":             {Flags{NoDefaults: true, DefaultsFile: "x"}, "--no-defaults reads no option file"},
		"bad port":         {Flags{DefaultsFile: write(t, filepath.Join(dir, "c.cnf"), "[client]\nport=http\n")}, "port = \"http\""},
	}
	for name, c := range cases {
		if _, err := Resolve(c.f, noEnv, ""); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

// --no-defaults reads nothing, as the server's option does; without
// --defaults-file the default files are read.
func TestResolveDefaultFiles(t *testing.T) {
	home := t.TempDir()
	write(t, filepath.Join(home, ".my.cnf"), "[mysqld]\ndatadir=/from/home\n")
	saved := optfile.DefaultFiles
	optfile.DefaultFiles = []string{"~/.my.cnf"}
	defer func() { optfile.DefaultFiles = saved }()
	s, err := Resolve(Flags{}, noEnv, home)
	if err != nil || s.KeyDir != "/from/home" {
		t.Errorf("%+v, %v", s, err)
	}
	DefaultDataDir = filepath.Join(home, "none")
	defer func() { DefaultDataDir = "/var/lib/mysql" }()
	s, err = Resolve(Flags{NoDefaults: true}, noEnv, home)
	if err != nil || s.KeyDir != "" || len(s.Files) != 0 {
		t.Errorf("--no-defaults: %+v, %v", s, err)
	}
	// Without datadir in any option, the server's default, if it exists.
	DefaultDataDir = home
	s, err = Resolve(Flags{NoDefaults: true}, noEnv, home)
	if err != nil || s.KeyDir != home || s.KeyDirFrom != "the server's default datadir" || s.KMS.DataDir != home {
		t.Errorf("default datadir: %+v, %v", s, err)
	}
}
