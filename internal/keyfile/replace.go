package keyfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Replace puts blob in place of the existing key file of (id, version),
// atomically: readers (the server, which opens a key file only to unwrap
// it) see the old file or the new one, never a mix or no file. It is what
// re-wrapping a key under another KMS key needs; the plugin itself never
// replaces a version.
//
// The new content goes to a temporary file named as Create names them
// (so CleanTemp, and the plugin at start, remove it after a crash), which
// gets the old file's owner and group (so a tool run as root leaves a file
// the server's user can still read) and modification time (so a listing
// still shows when the version was created), mode FileMode plus group read
// if the old file had it, is fsync'ed and renamed over the old name; then
// the directory is fsync'ed. A crash at any point leaves the old content
// or the new one under the name, plus at worst a temporary file.
//
// The old file must be a regular file (not a link). On an error the old
// content is in place, except when only the final directory fsync failed:
// the error then says so (the new content is in place, but a crash may
// bring the old one back).
func (s *Store) Replace(id, version uint32, blob []byte) error {
	if id == 0 || version == 0 || version > MaxVersion {
		return fmt.Errorf("replacing key file for key %d, version %d: not a valid key id and version", id, version)
	}
	final := s.Path(id, version)
	if len(blob) == 0 || len(blob) > MaxBlobSize {
		return fmt.Errorf("replacing %s: wrapped key of %d bytes is out of range 1..%d", final, len(blob), MaxBlobSize)
	}
	old, err := os.Lstat(final)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("replacing %s: %w", final, ErrNotFound)
	case err != nil:
		return fmt.Errorf("replacing %s: %w", final, err)
	case old.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("replacing %s: %w", final, ErrSymlink)
	case !old.Mode().IsRegular():
		return fmt.Errorf("replacing %s: %w (%s)", final, ErrNotRegular, old.Mode().Type())
	}
	tmp, err := tempPath(final)
	if err != nil {
		return fmt.Errorf("replacing %s: %w", final, err)
	}
	mode := FileMode | old.Mode().Perm()&0o040
	err = writeSynced(tmp, blob, func(f *os.File) error {
		if st, ok := old.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid()) {
			if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return fmt.Errorf("giving the new file the owner of the old one (uid %d, gid %d; run as that user or as root): %w", st.Uid, st.Gid, err)
			}
		}
		if mode != FileMode {
			if err := f.Chmod(mode); err != nil {
				return err
			}
		}
		return os.Chtimes(tmp, old.ModTime(), old.ModTime())
	})
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replacing %s: %w", final, err)
	}
	// rename(2) replaces the name in one step: an open of the name finds
	// the old inode or the new one.
	err = hook("rename", nil)
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replacing %s: %w", final, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("replacing %s: the new content is in place, but after a crash the old one may come back: %w", final, err)
	}
	return nil
}

// IsTempName reports whether name is a temporary key file name, as
// Create and Replace make them and CleanTemp removes them.
func IsTempName(name string) bool { return tempName(name) }
