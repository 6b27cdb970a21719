package kmsbackend

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/config"
)

// The AWS shared files can make the SDK run a command (credential_process)
// or use credentials someone else chose, so the files it reads are named
// explicitly (the files checked are the files read) and each is checked
// before the SDK sees it: a file, or a directory on its path, that another
// user could have written is refused.

// sharedFiles are the AWS shared files of one client: what the SDK reads.
type sharedFiles struct {
	credentials, credentialsWhy string // "" when there is none
	config, configWhy           string
}

// pickSharedFiles settles the files the SDK will read: the credentials file
// of CredentialsFile, else ~/.aws/credentials (which may appear later),
// and AWS_CONFIG_FILE, else ~/.aws/config.
func pickSharedFiles(getenv func(string) string, dataDir string) sharedFiles {
	var f sharedFiles
	home := homeDir(getenv)
	f.credentials, f.credentialsWhy = CredentialsFile(getenv, dataDir)
	if f.credentials == "" && home != "" {
		f.credentials, f.credentialsWhy = filepath.Join(home, ".aws", "credentials"), "home directory"
	}
	if p := getenv("AWS_CONFIG_FILE"); p != "" {
		f.config, f.configWhy = p, "AWS_CONFIG_FILE"
	} else if home != "" {
		f.config, f.configWhy = filepath.Join(home, ".aws", "config"), "home directory"
	}
	return f
}

// loadOptions hands the SDK exactly these files (an empty list, not nil,
// when there is none: nil would let the SDK pick its defaults).
func (f sharedFiles) loadOptions() []func(*config.LoadOptions) error {
	list := func(p string) []string {
		if p == "" {
			return []string{}
		}
		return []string{p}
	}
	return []func(*config.LoadOptions) error{
		config.WithSharedCredentialsFiles(list(f.credentials)),
		config.WithSharedConfigFiles(list(f.config)),
	}
}

// check runs checkSharedFile on both files; it returns the warnings (files
// that other users can read) or the first refusal.
func (f sharedFiles) check(euid int) ([]string, error) {
	var warnings []string
	for _, c := range []struct{ path, what string }{
		{f.credentials, "AWS credentials file (from " + f.credentialsWhy + ")"},
		{f.config, "AWS config file (from " + f.configWhy + ")"},
	} {
		w, err := checkSharedFile(c.path, c.what, euid)
		if err != nil {
			return nil, err
		}
		if w != "" {
			warnings = append(warnings, w)
		}
	}
	return warnings, nil
}

// homeDir is the home the SDK would use: $HOME, else the passwd entry.
func homeDir(getenv func(string) string) string {
	if h := getenv("HOME"); h != "" {
		return h
	}
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return ""
}

// UnsafeFileError is checkSharedFile's refusal of a file (or of a
// directory on its path) that another user could have written.
type UnsafeFileError struct {
	Path string // the file refused, or the directory on its path
	msg  string
}

func (e *UnsafeFileError) Error() string { return e.msg }

func refuse(path, format string, args ...any) error {
	return &UnsafeFileError{Path: path, msg: fmt.Sprintf(format, args...)}
}

// checkSharedFile checks one AWS shared file the SDK is about to read
// (what says which, for the messages), for a process whose effective
// user is euid. It refuses:
//   - a file that is not a regular file (/dev/null, an empty file by
//     design, excepted);
//   - a file owned by another user than euid or root;
//   - a file that its group or other users can write;
//   - a directory on its path (the path as given and, for a symbolic
//     link, the path it resolves to) owned by another user than euid or
//     root, or that its group or other users can write without the
//     sticky bit (they could replace the file).
//
// A file that does not exist is not read, so it passes. The warning is
// set when other users can read the file.
func checkSharedFile(path, what string, euid int) (warning string, err error) {
	if path == "" || path == os.DevNull {
		return "", nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("checking the %s %s: %w", what, path, err)
	}
	st, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("checking the %s %s: %w", what, abs, err)
	}
	me := userName(euid)
	if !st.Mode().IsRegular() {
		return "", refuse(abs, "refusing the %s %s: owner %s, mode %s: not a regular file; fix: use a regular file owned by %s with mode 0600",
			what, abs, userName(ownerOf(st)), st.Mode(), me)
	}
	uid := ownerOf(st)
	fix := fmt.Sprintf("chown %s: %s; chmod 600 %s", me, abs, abs)
	if uid != euid && uid != 0 {
		return "", refuse(abs, "refusing the %s %s: owner %s, mode %04o: it belongs to neither root nor %s (the user this process runs as), so its owner could make this process run a command (credential_process) or use credentials of theirs; fix: %s",
			what, abs, userName(uid), st.Mode().Perm(), me, fix)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return "", refuse(abs, "refusing the %s %s: owner %s, mode %04o: its group or other users can write it, so they could make this process run a command (credential_process) or use credentials of theirs; fix: %s",
			what, abs, userName(uid), st.Mode().Perm(), fix)
	}
	dirs := []string{filepath.Dir(abs)}
	if real, err := filepath.EvalSymlinks(abs); err == nil && filepath.Dir(real) != dirs[0] {
		dirs = append(dirs, filepath.Dir(real))
	}
	for _, d := range dirs {
		if err := checkDirChain(d, what, abs, euid, me); err != nil {
			return "", err
		}
	}
	if st.Mode().Perm()&0o004 != 0 {
		warning = fmt.Sprintf("the %s %s (owner %s, mode %04o) can be read by every local user, credentials included; fix: %s",
			what, abs, userName(uid), st.Mode().Perm(), fix)
	}
	return warning, nil
}

// checkDirChain checks dir and each directory above it up to "/".
func checkDirChain(dir, what, file string, euid int, me string) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("checking the directory %s of the %s %s: %w", d, what, file, err)
		}
		uid := ownerOf(st)
		if uid != euid && uid != 0 {
			return refuse(d, "refusing the %s %s: its directory %s (owner %s, mode %04o) belongs to neither root nor %s (the user this process runs as), so its owner could replace the file; fix: chown %s: %s, or move the file",
				what, file, d, userName(uid), st.Mode().Perm(), me, me, d)
		}
		if st.Mode().Perm()&0o022 != 0 && st.Mode()&fs.ModeSticky == 0 {
			return refuse(d, "refusing the %s %s: its directory %s (owner %s, mode %04o) can be written by its group or other users, who could replace the file; fix: chmod go-w %s",
				what, file, d, userName(uid), st.Mode().Perm(), d)
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}

func ownerOf(st fs.FileInfo) int {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(s.Uid)
	}
	return -1
}

// userName is the user's name, or "uid N" when it has none.
func userName(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid " + id
}

// credentialProcess names the program that the profile's credential_process
// will run (not its arguments, which may hold secrets), or "".
func credentialProcess(sources []interface{}) (profile, program string) {
	var shared *config.SharedConfig
	for _, s := range sources {
		switch c := s.(type) {
		case config.EnvConfig:
			if c.Credentials.HasKeys() {
				return "", "" // static keys from the environment come first
			}
		case *config.EnvConfig:
			if c.Credentials.HasKeys() {
				return "", ""
			}
		case config.SharedConfig:
			shared = &c
		case *config.SharedConfig:
			shared = c
		}
	}
	if shared == nil {
		return "", ""
	}
	// A role profile gets its first credentials from the end of its
	// source_profile chain; there, static keys come before the process.
	p := shared
	for p.Source != nil {
		p = p.Source
	}
	if p.CredentialProcess == "" || p.Credentials.HasKeys() {
		return "", ""
	}
	return p.Profile, firstWord(p.CredentialProcess)
}

func firstWord(cmd string) string {
	cmd = strings.TrimSpace(cmd)
	if cmd != "" && (cmd[0] == '"' || cmd[0] == '\'') {
		if i := strings.IndexByte(cmd[1:], cmd[0]); i >= 0 {
			return cmd[1 : i+1]
		}
	}
	if f := strings.Fields(cmd); len(f) > 0 {
		return f[0]
	}
	return ""
}
