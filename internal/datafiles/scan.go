package datafiles

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Progress is told how many files are done; Finish ends it.
type Progress interface {
	Add(n int)
	Finish()
}

// Use is a (key id, key version) pair the data files need, and which.
type Use struct {
	KeyID   uint32   `json:"key_id"`
	Version uint32   `json:"key_version"`
	Files   []string `json:"files"`
	// MoreFiles is how many more files need it than Files lists.
	MoreFiles int `json:"more_files,omitempty"`
}

// maxUseFiles bounds the files each Use names.
const maxUseFiles = 5

// Scan is what the data files of a directory need.
type Scan struct {
	Directory   string       `json:"directory"`
	Tablespaces []Tablespace `json:"innodb_tablespaces"`
	AriaTables  []AriaTable  `json:"aria_tables"`
	RedoLog     *RedoLog     `json:"redo_log,omitempty"`
	Binlogs     []Binlog     `json:"binlogs"`
	// Uses are the pairs needed, by key id and version.
	Uses []Use `json:"needed"`
	// Errors name files that could not be read (their keys are then
	// not known).
	Errors []string `json:"errors"`
}

var (
	systemFile = regexp.MustCompile(`^(ibdata1|undo[0-9]{3})$`)
	binlogName = regexp.MustCompile(`\.[0-9]{6}$`)
)

// LooksLikeDataDir tells whether dir holds MariaDB data files: ibdata1,
// ib_logfile0 or a *.ibd one directory down (a datadir or a backup of
// one).
func LooksLikeDataDir(dir string) bool {
	for _, n := range []string{"ibdata1", "ib_logfile0"} {
		if st, err := os.Stat(filepath.Join(dir, n)); err == nil && st.Mode().IsRegular() {
			return true
		}
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*", "*.ibd"))
	return len(m) > 0
}

// tablespaceFiles lists the InnoDB data files of dir: the system and undo
// tablespaces, and *.ibd one directory down (databases). The temporary
// tablespace (ibtmp1) is made anew at each start and is left out.
func tablespaceFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing the data files: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && systemFile.MatchString(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	ibd, err := filepath.Glob(filepath.Join(dir, "*", "*.ibd"))
	if err != nil {
		return nil, err
	}
	return append(out, ibd...), nil
}

// binlogFiles lists the binary and relay logs of dir: the names in its
// *.index files, else the files named like logs (NAME.000001) that start
// as one.
func binlogFiles(dir string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	idx, _ := filepath.Glob(filepath.Join(dir, "*.index"))
	for _, i := range idx {
		data, err := os.ReadFile(i)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				if !filepath.IsAbs(l) {
					l = filepath.Join(dir, filepath.Base(l))
				}
				if _, err := os.Stat(l); err == nil {
					add(l)
				}
			}
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Type().IsRegular() && binlogName.MatchString(e.Name()) && !strings.HasPrefix(e.Name(), "aria_log") {
			p := filepath.Join(dir, e.Name())
			if f, err := os.Open(p); err == nil {
				magic := make([]byte, len(binlogMagic))
				_, err := f.Read(magic)
				f.Close()
				if err == nil && string(magic) == string(binlogMagic) {
					add(p)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// ScanDir reads the data files of dir (a datadir, or a backup of one):
// every page of every InnoDB tablespace and of every encrypted Aria table
// (DATABASE/*.MAI and .MAD), parallel files at a time, the
// redo log header and the start of each binary log; and returns the
// (key id, version) pairs they need. newProgress, if set, makes a
// progress display over the tablespaces. Files that cannot be read are
// named in Errors; the error return is for a directory that cannot be
// listed or an interruption.
func ScanDir(ctx context.Context, dir string, parallel int, newProgress func(total int, what string) Progress) (*Scan, error) {
	files, err := tablespaceFiles(dir)
	if err != nil {
		return nil, err
	}
	aria, err := ariaFiles(dir)
	if err != nil {
		return nil, err
	}
	s := &Scan{Directory: dir, Tablespaces: make([]Tablespace, len(files)), AriaTables: make([]AriaTable, len(aria)),
		Binlogs: []Binlog{}, Uses: []Use{}, Errors: []string{}}
	total := len(files) + len(aria)
	var progress Progress
	if newProgress != nil && total > 0 {
		progress = newProgress(total, "reading data files")
	}
	parallel = max(1, min(parallel, total))
	work := make(chan int)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if i < len(files) {
					t, err := ReadTablespace(ctx, files[i])
					if err != nil {
						t.Error = err.Error()
					}
					s.Tablespaces[i] = t
				} else {
					t, err := ReadAriaTable(ctx, aria[i-len(files)])
					if err != nil {
						t.Error = err.Error()
					}
					s.AriaTables[i-len(files)] = t
				}
				if progress != nil {
					progress.Add(1)
				}
			}
		}()
	}
	for i := range total {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if progress != nil {
		progress.Finish()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	uses := map[[2]uint32][]string{}
	need := func(id, ver uint32, file string) {
		k := [2]uint32{id, ver}
		uses[k] = append(uses[k], file)
	}
	rel := func(p string) string {
		if r, err := filepath.Rel(dir, p); err == nil {
			return r
		}
		return p
	}
	// Each table's pages need the versions they have; a table not read
	// is an error.
	table := func(file string, keyID uint32, versions []VersionCount, err string) {
		if err != "" {
			s.Errors = append(s.Errors, err)
			return
		}
		for _, v := range versions {
			need(keyID, v.Version, rel(file))
		}
	}
	for _, t := range s.Tablespaces {
		table(t.File, t.KeyID, t.Versions, t.Error)
	}
	for _, t := range s.AriaTables {
		table(t.File, t.KeyID, t.Versions, t.Error)
	}
	redo := filepath.Join(dir, "ib_logfile0")
	if r, err := ReadRedoLog(redo); err == nil {
		s.RedoLog = &r
		if r.Encrypted {
			need(r.KeyID, r.KeyVersion, rel(redo))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		s.Errors = append(s.Errors, err.Error())
	}
	for _, p := range binlogFiles(dir) {
		b, err := ReadBinlog(p)
		if err != nil {
			s.Errors = append(s.Errors, err.Error())
			continue
		}
		b.Path = p
		s.Binlogs = append(s.Binlogs, b)
		if b.Encrypted {
			need(b.KeyID, b.KeyVersion, rel(p))
		}
	}
	for k, fs := range uses {
		u := Use{KeyID: k[0], Version: k[1], Files: fs}
		sort.Strings(u.Files)
		if len(u.Files) > maxUseFiles {
			u.MoreFiles, u.Files = len(u.Files)-maxUseFiles, u.Files[:maxUseFiles]
		}
		s.Uses = append(s.Uses, u)
	}
	sort.Slice(s.Uses, func(i, j int) bool {
		a, b := s.Uses[i], s.Uses[j]
		return a.KeyID < b.KeyID || a.KeyID == b.KeyID && a.Version < b.Version
	})
	return s, nil
}

// Evidence is an encrypted data file found by FindEncrypted.
type Evidence struct {
	File  string
	KeyID uint32
	// Version is the key version the file names (the redo log's); 0
	// for a tablespace (its pages each name theirs).
	Version uint32
}

func (e Evidence) String() string {
	if e.Version == 0 {
		return fmt.Sprintf("%s (key %d)", e.File, e.KeyID)
	}
	return fmt.Sprintf("%s (key %d version %d)", e.File, e.KeyID, e.Version)
}

// FindEncrypted looks, cheaply, for data in dir that is encrypted: the
// redo log header, page 0 (the encryption header only) of the system
// and undo tablespaces and of the *.ibd files, and the header of each
// Aria table (*.MAI), at most maxFiles of them.
// It returns the evidence by key id, and whether every file was looked
// at. It is what the plugin checks at start when it finds no key file
// at all.
func FindEncrypted(dir string, maxFiles int) (map[uint32][]Evidence, bool) {
	out := map[uint32][]Evidence{}
	if r, err := ReadRedoLog(filepath.Join(dir, "ib_logfile0")); err == nil && r.Encrypted {
		out[r.KeyID] = append(out[r.KeyID], Evidence{"ib_logfile0", r.KeyID, r.KeyVersion})
	}
	files, err := tablespaceFiles(dir)
	if err != nil {
		return out, false
	}
	aria, _ := ariaFiles(dir)
	n := len(files)
	files = append(files, aria...)
	complete := len(files) <= maxFiles
	if !complete {
		files = files[:maxFiles]
	}
	for i, f := range files {
		name := f
		if r, err := filepath.Rel(dir, f); err == nil {
			name = r
		}
		if i >= n {
			if h, err := readAriaHeader(f); err == nil && h.Encrypted && h.BlockRecord {
				name = strings.TrimSuffix(name, ".MAI") + ".MAD"
				out[h.KeyID] = append(out[h.KeyID], Evidence{File: name, KeyID: h.KeyID})
			}
			continue
		}
		h, err := ReadPage0(f)
		if err != nil || !h.HasCrypt || h.Scheme != 1 {
			continue
		}
		// Page 0's minimum version lags behind the pages (it is raised by
		// the encryption threads only): name the key id alone.
		out[h.KeyID] = append(out[h.KeyID], Evidence{File: name, KeyID: h.KeyID})
	}
	return out, complete
}
