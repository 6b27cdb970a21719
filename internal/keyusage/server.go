package keyusage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/mariadb-go/aws_key_management/internal/datafiles"
)

// Conn is how to reach the server: a Unix socket, or host and port.
type Conn struct {
	Socket   string
	Host     string
	Port     int
	User     string
	Password string
	// Timeout bounds connecting and each query; 0 means 10 s.
	Timeout time.Duration
}

// Open connects to the server (and checks the connection).
func Open(ctx context.Context, c Conn) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = c.User, c.Password
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = c.Timeout, c.Timeout, c.Timeout
	switch {
	case c.Host != "" && c.Host != "localhost":
		port := c.Port
		if port == 0 {
			port = 3306
		}
		cfg.Net, cfg.Addr = "tcp", c.Host+":"+strconv.Itoa(port)
	default:
		// As MariaDB's clients do, "localhost" means the socket.
		cfg.Net, cfg.Addr = "unix", c.Socket
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	pctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to the server at %s %s as %q: %w", cfg.Net, cfg.Addr, c.User, err)
	}
	return db, nil
}

// Tablespace is a row of information_schema.INNODB_TABLESPACES_ENCRYPTION.
type Tablespace struct {
	Space             uint64 `json:"space"`
	Name              string `json:"name"`
	Scheme            int    `json:"encryption_scheme"`
	KeyID             uint32 `json:"key_id"`
	MinKeyVersion     uint32 `json:"min_key_version"`
	CurrentKeyVersion uint32 `json:"current_key_version"`
	Rotating          bool   `json:"rotating_or_flushing"`
}

// Usage is what a running server says it uses.
type Usage struct {
	Version string `json:"version"`
	DataDir string `json:"datadir"`
	// KeyDir is where the server's plugin reads key files: its
	// aws_key_management_keyfile_dir, else the datadir ("" if the
	// server does not run this plugin).
	KeyDir  string    `json:"key_dir,omitempty"`
	Started time.Time `json:"started"`

	Tablespaces []Tablespace `json:"innodb_tablespaces"`
	// TablespacesError says why InnoDB's tablespaces are not known.
	TablespacesError string `json:"innodb_tablespaces_error,omitempty"`

	RedoLog      *datafiles.RedoLog `json:"redo_log,omitempty"`
	RedoLogError string             `json:"redo_log_error,omitempty"`

	// Binlogs are the binary and relay log files the server lists.
	Binlogs      []datafiles.Binlog `json:"binlogs"`
	BinlogsError string             `json:"binlogs_error,omitempty"`

	// Settings are the server's encryption settings, as it reports them.
	Settings map[string]string `json:"settings"`

	// Aria is what the files of the Aria tables in the server's datadir
	// say (read by list --data-files on the server's host); nil when they
	// were not read.
	Aria *AriaUsage `json:"aria,omitempty"`
}

// AriaUsage is the key versions the pages of the Aria tables use.
type AriaUsage struct {
	// Tables are, by (key id, version), the Aria tables (db/t.MAD) that
	// have pages of that version on disk.
	Tables map[[2]uint32][]string `json:"-"`
	// Encrypted is how many encrypted Aria tables were read.
	Encrypted int `json:"encrypted_tables"`
	// Unread names the Aria files that could not be read.
	Unread []string `json:"unread"`
}

// AriaFromScan is the Aria tables' use of key versions, from the data
// files read offline (the server's datadir).
func AriaFromScan(s *datafiles.Scan) *AriaUsage {
	a := &AriaUsage{Tables: map[[2]uint32][]string{}, Unread: []string{}}
	for _, t := range s.AriaTables {
		name := t.File
		if r, err := filepath.Rel(s.Directory, t.File); err == nil {
			name = r
		}
		switch {
		case t.Error != "":
			a.Unread = append(a.Unread, t.Error)
		case t.Encrypted:
			a.Encrypted++
			for _, v := range t.Versions {
				k := [2]uint32{t.KeyID, v.Version}
				a.Tables[k] = append(a.Tables[k], name)
			}
		}
	}
	return a
}

// settingNames are the variables FromServer reports in Settings.
var settingNames = []string{"innodb_encrypt_tables", "innodb_encrypt_log", "innodb_encrypt_temporary_tables",
	"encrypt_binlog", "encrypt_tmp_files", "encrypt_tmp_disk_tables", "aria_encrypt_tables",
	"innodb_encryption_threads", "innodb_encryption_rotate_key_age", "aws_key_management_master_key_id"}

// FromServer asks the server what it uses. Only connection and basic
// queries are errors; what cannot be found out (no privilege, a log file
// the tool cannot read, information_schema's table disabled) is recorded
// in the *Error fields, and the versions it concerns are then kept.
func FromServer(ctx context.Context, db *sql.DB) (*Usage, error) {
	vars, err := globalVariables(ctx, db)
	if err != nil {
		return nil, err
	}
	u := &Usage{Version: vars["version"], DataDir: vars["datadir"], Settings: map[string]string{},
		Tablespaces: []Tablespace{}, Binlogs: []datafiles.Binlog{}}
	for _, n := range settingNames {
		if v, ok := vars[n]; ok {
			u.Settings[n] = v
		}
	}
	if _, ok := vars["aws_key_management_keyfile_dir"]; ok {
		u.KeyDir = u.DataDir
		if d := vars["aws_key_management_keyfile_dir"]; d != "" {
			u.KeyDir = underDir(u.DataDir, d)
		}
	}
	var uptime int64
	if err := db.QueryRowContext(ctx, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'").Scan(&uptime); err != nil {
		return nil, fmt.Errorf("reading the server's uptime: %w", err)
	}
	// Rounded down to the second the server counts in, minus one for
	// the second it started in: never later than the real start.
	u.Started = time.Now().Add(-time.Duration(uptime+1) * time.Second).Truncate(time.Second)

	if ts, err := tablespaces(ctx, db); err != nil {
		u.TablespacesError = err.Error()
	} else if ts != nil {
		u.Tablespaces = ts
	}
	redo := filepath.Join(underDir(u.DataDir, vars["innodb_log_group_home_dir"]), "ib_logfile0")
	if r, err := datafiles.ReadRedoLog(redo); err != nil {
		u.RedoLogError = err.Error()
	} else {
		u.RedoLog = &r
	}
	logs, err := binlogs(ctx, db, vars)
	if err != nil {
		u.BinlogsError = err.Error()
	}
	if logs != nil {
		u.Binlogs = logs
	}
	return u, nil
}

func globalVariables(ctx context.Context, db *sql.DB) (map[string]string, error) {
	names := append([]string{"version", "datadir", "innodb_log_group_home_dir", "log_bin", "log_bin_basename",
		"relay_log_basename", "relay_log_index", "aws_key_management_keyfile_dir"}, settingNames...)
	q := "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('" + strings.Join(names, "','") + "')"
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("reading the server's variables: %w", err)
	}
	defer rows.Close()
	vars := map[string]string{}
	for rows.Next() {
		var n string
		var v sql.NullString
		if err := rows.Scan(&n, &v); err != nil {
			return nil, err
		}
		vars[strings.ToLower(n)] = v.String
	}
	return vars, rows.Err()
}

// underDir resolves a path the server takes relative to its datadir.
func underDir(dataDir, p string) string {
	if p == "" {
		return dataDir
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dataDir, p)
}

// MySQL error numbers FromServer explains.
const (
	erUnknownTable      = 1109 // ER_UNKNOWN_TABLE
	erSpecificAccess    = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR
	erNoBinaryLogging   = 1381 // ER_NO_BINARY_LOGGING
	erTableAccessDenied = 1142
)

func mysqlErrno(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func tablespaces(ctx context.Context, db *sql.DB) ([]Tablespace, error) {
	rows, err := db.QueryContext(ctx, "SELECT SPACE, NAME, ENCRYPTION_SCHEME, CURRENT_KEY_ID, MIN_KEY_VERSION, CURRENT_KEY_VERSION, ROTATING_OR_FLUSHING FROM information_schema.INNODB_TABLESPACES_ENCRYPTION ORDER BY SPACE")
	if err != nil {
		switch mysqlErrno(err) {
		case erUnknownTable:
			return nil, errors.New("information_schema.INNODB_TABLESPACES_ENCRYPTION is not available: the server runs with its plugin disabled " +
				"(innodb_tablespaces_encryption=OFF, as mysql-test-run sets it); start it with --innodb-tablespaces-encryption")
		case erSpecificAccess, erTableAccessDenied:
			return nil, fmt.Errorf("reading information_schema.INNODB_TABLESPACES_ENCRYPTION needs the PROCESS privilege: %w", err)
		}
		return nil, fmt.Errorf("reading information_schema.INNODB_TABLESPACES_ENCRYPTION: %w", err)
	}
	defer rows.Close()
	var out []Tablespace
	for rows.Next() {
		var t Tablespace
		var name sql.NullString
		var minV, curV sql.NullInt64
		if err := rows.Scan(&t.Space, &name, &t.Scheme, &t.KeyID, &minV, &curV, &t.Rotating); err != nil {
			return nil, err
		}
		t.Name, t.MinKeyVersion, t.CurrentKeyVersion = name.String, uint32(minV.Int64), uint32(curV.Int64)
		out = append(out, t)
	}
	return out, rows.Err()
}

// maxLogFiles bounds the binary and relay log files read.
const maxLogFiles = 100000

func binlogs(ctx context.Context, db *sql.DB, vars map[string]string) ([]datafiles.Binlog, error) {
	var out []datafiles.Binlog
	if strings.EqualFold(vars["log_bin"], "ON") {
		dir := filepath.Dir(underDir(vars["datadir"], vars["log_bin_basename"]))
		rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
		if err != nil {
			if mysqlErrno(err) != erNoBinaryLogging {
				return nil, fmt.Errorf("SHOW BINARY LOGS (needs the BINLOG MONITOR privilege): %w", err)
			}
		} else {
			defer rows.Close()
			cols, _ := rows.Columns()
			for rows.Next() && len(out) < maxLogFiles {
				vals := make([]any, len(cols))
				var name string
				vals[0] = &name
				for i := 1; i < len(vals); i++ {
					vals[i] = new(sql.RawBytes)
				}
				if err := rows.Scan(vals...); err != nil {
					return nil, err
				}
				out = append(out, readLog(filepath.Join(dir, name)))
			}
			if err := rows.Err(); err != nil {
				return nil, err
			}
		}
	}
	// Relay logs of a replica: the index file lists them.
	if idx := vars["relay_log_index"]; idx != "" {
		names, err := readIndex(underDir(vars["datadir"], idx))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return out, fmt.Errorf("reading the relay log index: %w", err)
		}
		for _, n := range names {
			out = append(out, readLog(underDir(vars["datadir"], n)))
		}
	}
	return out, nil
}

func readLog(path string) datafiles.Binlog {
	b, err := datafiles.ReadBinlog(path)
	if err != nil {
		return datafiles.Binlog{Path: path, Error: err.Error()}
	}
	return b
}

// readIndex reads a binary or relay log index file: one file name a line.
func readIndex(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && len(names) < maxLogFiles {
			names = append(names, l)
		}
	}
	return names, nil
}
