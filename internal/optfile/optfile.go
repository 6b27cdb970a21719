package optfile

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ServerGroups are the groups mariadbd 10.11 reads (mysqld.cc's
// load_default_groups), in the order given there; within the files,
// later lines win whatever their group.
var ServerGroups = []string{"mysqld", "server", "mysqld-10.11", "mariadb", "mariadb-10.11",
	"mariadbd", "mariadbd-10.11", "client-server", "galera"}

// DefaultFiles are the files mariadbd reads without --defaults-file, in
// order ("~" is the home directory): what `mariadbd --help --verbose`
// lists on Debian.
var DefaultFiles = []string{"/etc/my.cnf", "/etc/mysql/my.cnf", "~/.my.cnf"}

// maxDepth bounds !include nesting (the server stops at 10 as well).
const maxDepth = 10

// Options holds every value given to each option, in the order read.
// Names are canonical: lower case, '-' written '_', without the "loose_"
// prefix, so "loose-aws-key-management-region" is "aws_key_management_region".
type Options struct {
	values map[string][]string
	// Files lists the files read, in order (includes too).
	Files []string
}

// Get returns the last value of an option (what the server uses) and
// whether it was given. An option given without a value has "".
func (o *Options) Get(name string) (string, bool) {
	v := o.values[Canonical(name)]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// All returns every value of an option, in order (plugin_load_add, say).
func (o *Options) All(name string) []string { return o.values[Canonical(name)] }

// Names returns the canonical names of every option given, sorted: for
// a tool that refuses options it does not know.
func (o *Options) Names() []string {
	names := make([]string, 0, len(o.values))
	for n := range o.values {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Canonical is the name under which an option is stored.
func Canonical(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.ReplaceAll(n, "-", "_")
	return strings.TrimPrefix(n, "loose_")
}

// Load reads the option files as the server does: with defaultsFile
// set, that file only (it must exist); otherwise DefaultFiles, those that
// exist; then extraFile if set (--defaults-extra-file; it must exist).
// Only lines in one of groups count. home replaces "~" (empty: $HOME).
func Load(defaultsFile, extraFile string, groups []string, home string) (*Options, error) {
	o := &Options{values: map[string][]string{}}
	want := map[string]bool{}
	for _, g := range groups {
		want[strings.ToLower(g)] = true
	}
	if defaultsFile != "" {
		if err := o.readFile(defaultsFile, want, 0); err != nil {
			return nil, err
		}
	} else {
		if home == "" {
			home = os.Getenv("HOME")
		}
		for _, f := range DefaultFiles {
			if strings.HasPrefix(f, "~/") {
				if home == "" {
					continue
				}
				f = filepath.Join(home, f[2:])
			}
			if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err := o.readFile(f, want, 0); err != nil {
				return nil, err
			}
		}
	}
	if extraFile != "" {
		if err := o.readFile(extraFile, want, 0); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (o *Options) readFile(path string, want map[string]bool, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("reading %s: includes nested more than %d deep", path, maxDepth)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading option file: %w", err)
	}
	defer f.Close()
	o.Files = append(o.Files, path)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	inGroup := false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '!':
			if err := o.directive(path, n, line, want, depth); err != nil {
				return err
			}
			continue
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return fmt.Errorf("%s:%d: a group name without its closing ']': %q", path, n, line)
			}
			inGroup = want[strings.ToLower(strings.TrimSpace(line[1:end]))]
			continue
		}
		if !inGroup {
			continue
		}
		name, value, err := parseOption(line)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
		c := Canonical(name)
		o.values[c] = append(o.values[c], value)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// directive handles !include FILE and !includedir DIR (its *.cnf files,
// in name order). A relative path is taken from the current directory,
// as the server takes it (not from the including file's directory).
func (o *Options) directive(path string, n int, line string, want map[string]bool, depth int) error {
	word := strings.Fields(line)[0]
	arg := strings.TrimSpace(line[len(word):])
	if arg == "" {
		return fmt.Errorf("%s:%d: %s needs a path", path, n, word)
	}
	switch word {
	case "!include":
		return o.readFile(arg, want, depth+1)
	case "!includedir":
		des, err := os.ReadDir(arg)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
		var names []string
		for _, de := range des {
			if !de.IsDir() && strings.HasSuffix(de.Name(), ".cnf") {
				names = append(names, de.Name())
			}
		}
		sort.Strings(names)
		for _, name := range names {
			if err := o.readFile(filepath.Join(arg, name), want, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s:%d: unknown directive %s (want !include or !includedir)", path, n, word)
}

// parseOption splits "name = value # comment": the value loses its
// surrounding spaces and quotes (' or "); outside quotes '#' starts a
// comment; \n \t \r \b \s \\ \" \' are escapes, as in the server's parser.
func parseOption(line string) (name, value string, err error) {
	name, rest, hasValue := strings.Cut(line, "=")
	name = strings.TrimSpace(name)
	if name == "" {
		return "", "", fmt.Errorf("an option without a name: %q", line)
	}
	if !hasValue {
		if i := strings.IndexByte(name, '#'); i >= 0 {
			name = strings.TrimSpace(name[:i])
		}
		return name, "", nil
	}
	rest = strings.TrimSpace(rest)
	var b strings.Builder
	var quote byte
	if rest != "" && (rest[0] == '\'' || rest[0] == '"') {
		quote, rest = rest[0], rest[1:]
	}
	closed := quote == 0
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case c == '\\' && i+1 < len(rest):
			i++
			switch rest[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 's':
				b.WriteByte(' ')
			case '\\', '"', '\'':
				b.WriteByte(rest[i])
			default:
				b.WriteByte('\\')
				b.WriteByte(rest[i])
			}
		case quote != 0 && c == quote:
			return name, b.String(), nil
		case quote == 0 && c == '#':
			return name, strings.TrimSpace(b.String()), nil
		default:
			b.WriteByte(c)
		}
	}
	if !closed {
		return "", "", fmt.Errorf("option %s: a quoted value without its closing %c", name, quote)
	}
	return name, strings.TrimSpace(b.String()), nil
}
