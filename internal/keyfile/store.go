package keyfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// MaxBlobSize is the largest CiphertextBlob KMS returns (the API limit is
// 6144 bytes). A larger key file is damaged, not a key.
const MaxBlobSize = 6144

// FileMode is the permission of new key files: owner read only. Upstream
// creates them readable by everyone.
const FileMode fs.FileMode = 0o400

// tempMarker is part of the name of a key file being written. Such names
// never parse as key files, so a crash mid-write leaves nothing the plugin
// (or the C++ plugin) would load; Open removes them.
const tempMarker = ".tmp-"

// Errors a caller can test with errors.Is.
var (
	ErrNotFound   = errors.New("key file does not exist")
	ErrExists     = errors.New("key file already exists")
	ErrEmpty      = errors.New("key file is empty")
	ErrTooLarge   = fmt.Errorf("key file is larger than %d bytes", MaxBlobSize)
	ErrNotRegular = errors.New("not a regular file")
	ErrSymlink    = errors.New("is a symbolic link; key files are read only as regular files (replace the link with the file it points to)")
)

// Store is a directory of key files. Its methods are safe for concurrent
// use: they share no mutable state besides the file system.
type Store struct {
	dir string
}

// Entry is a key file found by Scan.
type Entry struct {
	ID, Version uint32
}

// New returns the store in dir; an empty dir means the current directory,
// which inside the server is the datadir.
func New(dir string) *Store {
	if dir == "" {
		dir = "."
	}
	return &Store{dir: dir}
}

// Dir is the directory ("." for the current one).
func (s *Store) Dir() string { return s.dir }

// Path is the path of a key version's file.
func (s *Store) Path(id, version uint32) string {
	return filepath.Join(s.dir, Name(id, version))
}

// Scan lists the key files in the directory, sorted by id then version.
// Names that are not key file names are ignored, as upstream ignores them.
func (s *Store) Scan() ([]Entry, error) {
	l, err := s.List()
	return l.Entries, err
}

// Listing is what List finds.
type Listing struct {
	Entries []Entry // key files, sorted by id then version
	// Ignored are names of the form aws-kms-key.<digits>.<digits> that
	// are not key file names: leading zeros (the plugin would open
	// another name for that version), a zero, a number above 32 bits, a
	// version above MaxVersion. Each deserves a warning.
	Ignored []Ignored
}

// Ignored is a key-file-like name that List refused, and why.
type Ignored struct {
	Name   string
	Reason error
}

// List is Scan with the key-file-like names it ignored.
func (s *Store) List() (Listing, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return Listing{}, fmt.Errorf("scanning key directory %s: %w", s.dir, err)
	}
	var l Listing
	for _, de := range des {
		id, ver, err := parseName(de.Name())
		switch {
		case err == nil:
			l.Entries = append(l.Entries, Entry{ID: id, Version: ver})
		case !errors.Is(err, errNotKeyName):
			l.Ignored = append(l.Ignored, Ignored{Name: de.Name(), Reason: err})
		}
	}
	sort.Slice(l.Entries, func(i, j int) bool {
		if l.Entries[i].ID != l.Entries[j].ID {
			return l.Entries[i].ID < l.Entries[j].ID
		}
		return l.Entries[i].Version < l.Entries[j].Version
	})
	return l, nil
}

// Latest returns the highest version of key id on disk, 0 if none.
func (s *Store) Latest(id uint32) (uint32, error) {
	entries, err := s.Scan()
	if err != nil {
		return 0, err
	}
	var latest uint32
	for _, e := range entries {
		if e.ID == id && e.Version > latest {
			latest = e.Version
		}
	}
	return latest, nil
}

// Read returns the wrapped key stored for a version. Every failure names
// the file and the reason: ErrNotFound, ErrNotRegular, ErrEmpty,
// ErrTooLarge, a short read or the system error.
func (s *Store) Read(id, version uint32) ([]byte, error) {
	path := s.Path(id, version)
	// O_NONBLOCK: opening a FIFO that has a key file's name must fail
	// the type check below, not block the caller (at plugin start, the
	// server) until some writer opens it. It changes nothing for regular
	// files. O_NOFOLLOW: a link would let whoever can write the directory
	// (or the link's target) choose the key a version decrypts to.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("reading %s: %w", path, ErrNotFound)
		case errors.Is(err, syscall.ELOOP):
			return nil, fmt.Errorf("reading %s: %w", path, ErrSymlink)
		}
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	switch {
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("reading %s: %w (%s)", path, ErrNotRegular, st.Mode().Type())
	case st.Size() == 0:
		return nil, fmt.Errorf("reading %s: %w", path, ErrEmpty)
	case st.Size() > MaxBlobSize:
		return nil, fmt.Errorf("reading %s: %w (it has %d)", path, ErrTooLarge, st.Size())
	}
	blob := make([]byte, st.Size())
	if _, err := io.ReadFull(f, blob); err != nil {
		return nil, fmt.Errorf("reading %s: short read of %d-byte file: %w", path, st.Size(), err)
	}
	// A file that grew after Stat was changed under us: refuse it rather
	// than use a prefix.
	if n, _ := f.Read(make([]byte, 1)); n != 0 {
		return nil, fmt.Errorf("reading %s: file changed while being read", path)
	}
	return blob, nil
}

// Create stores a new key version. It never replaces an existing file: if
// the version exists it returns ErrExists and leaves the file untouched. A
// crash at any point leaves either no file for the version or a complete
// one (plus, at worst, a temporary file that CleanTemp removes).
func (s *Store) Create(id, version uint32, blob []byte) error {
	if id == 0 || version == 0 || version > MaxVersion {
		// Such a file would never be found again (ParseName refuses it).
		return fmt.Errorf("creating key file for key %d, version %d: not a valid key id and version", id, version)
	}
	if len(blob) == 0 || len(blob) > MaxBlobSize {
		return fmt.Errorf("creating %s: wrapped key of %d bytes is out of range 1..%d",
			s.Path(id, version), len(blob), MaxBlobSize)
	}
	final := s.Path(id, version)
	tmp, err := tempPath(final)
	if err != nil {
		return fmt.Errorf("creating %s: %w", final, err)
	}
	if err := writeSynced(tmp, blob, nil); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("creating %s: %w", final, err)
	}
	// link(2) fails with EEXIST instead of replacing: two writers of the
	// same version cannot overwrite each other, unlike rename(2).
	err = hook("link", nil)
	if err == nil {
		err = os.Link(tmp, final)
	}
	os.Remove(tmp)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating %s: %w", final, ErrExists)
		}
		return fmt.Errorf("creating %s: %w", final, err)
	}
	if err := syncDir(s.dir); err != nil {
		// The new name may not survive a crash, and the caller treats the
		// version as not created (the manager does not publish it, and a
		// later rotation would find the name taken): take it away again,
		// so that an error always means "no new version".
		os.Remove(final)
		return fmt.Errorf("creating %s: %w", final, err)
	}
	return nil
}

// testHook is for the package's tests only and nil otherwise. When set,
// it runs before each step of Create ("open", "write", "sync", "link",
// "syncdir") with the temporary file (nil before it is open); an error
// it returns is taken as the error of that step. It lets the tests inject
// ENOSPC, EROFS and fsync failures, and widen the window for kill -9.
var testHook func(step string, f *os.File) error

func hook(step string, f *os.File) error {
	if testHook == nil {
		return nil
	}
	return testHook(step, f)
}

// writeSynced creates path (it must not exist) with data, mode FileMode,
// and fsyncs it. before, if set, runs after the write and before the
// fsync (Replace sets owner and times there).
func writeSynced(path string, data []byte, before func(f *os.File) error) error {
	if err := hook("open", nil); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, FileMode)
	if err != nil {
		return err
	}
	if err := hook("write", f); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if before != nil {
		if err := before(f); err != nil {
			f.Close()
			return err
		}
	}
	if err := hook("sync", f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	if err := hook("syncdir", nil); err != nil {
		return fmt.Errorf("fsync of directory %s: %w", dir, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync of directory %s: %w", dir, err)
	}
	return nil
}

// tempSuffixLen is the length of the hex part of a temporary name: 6
// random bytes.
const tempSuffixLen = 12

// tempPath returns a new temporary name for the key file final, in the
// form tempName recognizes (and CleanTemp removes).
func tempPath(final string) (string, error) {
	var rnd [tempSuffixLen / 2]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	return final + tempMarker + hex.EncodeToString(rnd[:]), nil
}

// tempName reports whether name is exactly a temporary name Create makes:
// a key file name, tempMarker, 12 lowercase hex digits.
func tempName(name string) bool {
	base, suffix, found := strings.Cut(name, tempMarker)
	if !found || len(suffix) != tempSuffixLen {
		return false
	}
	for i := 0; i < len(suffix); i++ {
		if c := suffix[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	_, _, ok := ParseName(base)
	return ok
}

// CleanTemp removes temporary files left by a Create that was interrupted
// (a crash or kill -9) and returns their names. Only regular files named
// exactly as Create names them are removed: an operator's own copy
// (aws-kms-key.1.1.tmp-backup, say) stays.
func (s *Store) CleanTemp() ([]string, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("scanning key directory %s: %w", s.dir, err)
	}
	var removed []string
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() || !tempName(name) {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
			return removed, fmt.Errorf("removing leftover temporary key file %s: %w", name, err)
		}
		removed = append(removed, name)
	}
	return removed, nil
}
