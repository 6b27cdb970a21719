package toolconfig

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/keyusage"
	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
	"github.com/mariadb-go/aws_key_management/internal/optfile"
)

// ClientGroups are the option-file groups the tool reads the connection
// to the server from, as MariaDB's clients do, plus its own.
var ClientGroups = []string{"client", "client-server", "client-mariadb", "mariadb-aws-keys"}

// DefaultSocket is where Debian's server listens when no option says.
const DefaultSocket = "/run/mysqld/mysqld.sock"

// DefaultDataDir is the datadir mariadbd uses when no option names one
// (Debian's and most packages' build); it counts only if it exists.
var DefaultDataDir = "/var/lib/mysql"

// Flags is what the command line gave; empty values were not given.
type Flags struct {
	DefaultsFile, DefaultsExtraFile string
	NoDefaults                      bool

	// Dir is the positional DIR argument.
	Dir            string
	KeyfileDir     string
	DataDir        string
	Region         string
	EndpointURL    string
	RequestTimeout string // milliseconds, or a duration such as "2s"

	Socket   string
	Host     string
	Port     int
	User     string
	Password *string // nil: not given
}

// Settings is what the tool works with.
type Settings struct {
	// KeyDir is the directory of the key files; KeyDirFrom says which
	// setting named it.
	KeyDir, KeyDirFrom string
	DataDir            string
	// MasterKeyID is aws_key_management_master_key_id of the option
	// files ("" if not set).
	MasterKeyID string
	// KMS is the plugin's client configuration (Log and Getenv are the
	// caller's to set).
	KMS kmsbackend.Config
	// Conn is the connection to the server (list --server).
	Conn keyusage.Conn
	// Files are the option files read, in order.
	Files []string
}

// Resolve settles the settings: the command line wins over the option
// files. home replaces "~" in the default option files; getenv reads
// MYSQL_PWD. A missing key directory is not an error here (the commands
// that need one say so): KeyDir is "" then.
func Resolve(f Flags, getenv func(string) string, home string) (Settings, error) {
	srv, cli := &optfile.Options{}, &optfile.Options{}
	var files []string
	if !f.NoDefaults {
		var err error
		if srv, err = optfile.Load(f.DefaultsFile, f.DefaultsExtraFile, optfile.ServerGroups, home); err != nil {
			return Settings{}, err
		}
		if cli, err = optfile.Load(f.DefaultsFile, f.DefaultsExtraFile, ClientGroups, home); err != nil {
			return Settings{}, err
		}
		files = srv.Files
	} else if f.DefaultsFile != "" || f.DefaultsExtraFile != "" {
		return Settings{}, errors.New("--no-defaults reads no option file: drop --defaults-file and --defaults-extra-file, or --no-defaults")
	}
	s := Settings{Files: files}
	pick := func(flag string, o *optfile.Options, name string) (string, string) {
		if flag != "" {
			return flag, "--" + strings.ReplaceAll(strings.TrimPrefix(name, "aws_key_management_"), "_", "-")
		}
		if v, ok := o.Get(name); ok && v != "" {
			return v, name + " (option files)"
		}
		return "", ""
	}
	s.DataDir, _ = pick(f.DataDir, srv, "datadir")
	defaultDataDir := false
	if s.DataDir == "" {
		if st, err := os.Stat(DefaultDataDir); err == nil && st.IsDir() {
			s.DataDir, defaultDataDir = DefaultDataDir, true
		}
	}
	s.MasterKeyID, _ = srv.Get("aws_key_management_master_key_id")
	s.KMS.Region, _ = pick(f.Region, srv, "aws_key_management_region")
	s.KMS.EndpointURL, _ = pick(f.EndpointURL, srv, "aws_key_management_endpoint_url")
	s.KMS.DataDir = s.DataDir
	timeout, from := pick(f.RequestTimeout, srv, "aws_key_management_request_timeout")
	if timeout != "" {
		d, err := parseTimeout(timeout)
		if err != nil {
			return Settings{}, fmt.Errorf("%s = %q: %w", from, timeout, err)
		}
		s.KMS.RequestTimeout = d
	}

	switch {
	case f.Dir != "":
		s.KeyDir, s.KeyDirFrom = f.Dir, "the DIR argument"
	case f.KeyfileDir != "":
		s.KeyDir, s.KeyDirFrom = f.KeyfileDir, "--keyfile-dir"
	default:
		if d, ok := srv.Get("aws_key_management_keyfile_dir"); ok && d != "" {
			// The server runs the plugin in its datadir: a relative
			// keyfile_dir is under it.
			if !filepath.IsAbs(d) {
				if s.DataDir == "" {
					return Settings{}, fmt.Errorf("aws_key_management_keyfile_dir = %q (option files) is relative to the datadir, which no option names: give --datadir or the directory", d)
				}
				d = filepath.Join(s.DataDir, d)
			}
			s.KeyDir, s.KeyDirFrom = d, "aws_key_management_keyfile_dir (option files)"
		} else if s.DataDir != "" {
			s.KeyDir, s.KeyDirFrom = s.DataDir, "the datadir"
			if defaultDataDir {
				s.KeyDirFrom = "the server's default datadir"
			}
		}
	}

	// The connection: command line, client groups, then where the
	// server's own options say it listens.
	c := &s.Conn
	c.Socket, _ = pick(f.Socket, cli, "socket")
	if c.Socket == "" {
		if c.Socket, _ = srv.Get("socket"); c.Socket == "" {
			c.Socket = DefaultSocket
		}
	}
	c.Host, _ = pick(f.Host, cli, "host")
	c.Port = f.Port
	if c.Port == 0 {
		if p, ok := cli.Get("port"); ok && p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 || n > 65535 {
				return Settings{}, fmt.Errorf("port = %q (option files): not a port number", p)
			}
			c.Port = n
		}
	}
	c.User, _ = pick(f.User, cli, "user")
	if c.User == "" {
		if u, err := user.Current(); err == nil {
			c.User = u.Username
		}
	}
	switch {
	case f.Password != nil:
		c.Password = *f.Password
	case getenv("MYSQL_PWD") != "":
		c.Password = getenv("MYSQL_PWD")
	default:
		c.Password, _ = cli.Get("password")
	}
	return s, nil
}

// parseTimeout reads aws_key_management_request_timeout: milliseconds
// (the server variable's unit), or a Go duration such as "2s".
func parseTimeout(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 || n > 24*3600*1000 {
			return 0, errors.New("out of range 0..86400000 ms")
		}
		return time.Duration(n) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errors.New("want milliseconds (as the server variable takes) or a duration such as 2s")
	}
	return d, nil
}
