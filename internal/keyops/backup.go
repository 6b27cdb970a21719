package keyops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
)

// BackupDirPrefix starts the name of rewrap's default backup directory,
// <dir>/#sql-rewrap-backup-<UTC time>/. It is a subdirectory, so the
// plugin never takes its files for key files (it reads only the key
// directory itself); and the server lists no directory of its datadir
// whose name starts with "#sql" as a database (SHOW DATABASES would show
// "#mysql50#.rewrap-backup-..." for a name starting with a dot).
const BackupDirPrefix = "#sql-rewrap-backup-"

// backupDir is where one rewrap run keeps the old blobs until the new
// ones are verified. The directory is made on first use (mode 0700).
type backupDir struct {
	path    string
	once    sync.Once
	makeErr error
}

func (b *backupDir) make() error {
	b.once.Do(func() {
		err := os.Mkdir(b.path, 0o700)
		if errors.Is(err, fs.ErrExist) {
			var st os.FileInfo
			if st, err = os.Stat(b.path); err == nil && !st.IsDir() {
				err = fmt.Errorf("%s exists and is not a directory", b.path)
			}
		}
		if err == nil {
			err = syncDir(filepath.Dir(b.path))
		}
		if err != nil {
			b.makeErr = fmt.Errorf("making the backup directory: %w", err)
		}
	})
	return b.makeErr
}

// save writes the old blob of a key file to the backup directory, under
// the key file's name, as the plugin writes key files (keyfile.Create:
// temporary file, fsync, link, directory fsync, mode 0400): a backup
// under its final name is always whole, even after a kill -9. A copy
// already there with the same content is fine; another content is an
// error.
func (b *backupDir) save(e keyfile.Entry, blob []byte) (string, error) {
	if err := b.make(); err != nil {
		return "", err
	}
	bs := keyfile.New(b.path)
	p := bs.Path(e.ID, e.Version)
	err := bs.Create(e.ID, e.Version, blob)
	if errors.Is(err, keyfile.ErrExists) {
		if old, rerr := bs.Read(e.ID, e.Version); rerr == nil && bytes.Equal(old, blob) {
			return p, nil
		}
		return "", fmt.Errorf("backing up the old blob: %s already exists with another content", p)
	}
	if err != nil {
		return "", fmt.Errorf("backing up the old blob: %w", err)
	}
	return p, nil
}

// remove deletes a backup once the new blob is verified.
func removeBackup(p string) error {
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("removing the backup %s: %w", p, err)
	}
	return syncDir(filepath.Dir(p))
}

// removeIfEmpty removes a backup directory that holds nothing more.
func removeIfEmpty(dir string) bool {
	if err := os.Remove(dir); err != nil {
		return false
	}
	syncDir(filepath.Dir(dir))
	return true
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync of directory %s: %w", dir, err)
	}
	return nil
}

func defaultBackupDir(dir string, now time.Time) string {
	return filepath.Join(dir, BackupDirPrefix+now.UTC().Format("20060102T150405Z"))
}

// Leftover is what a rewrap did (or, with --dry-run, would do) with the
// old blob an interrupted run left in a backup directory.
type Leftover struct {
	Backup string `json:"backup"`
	// Action: "removed" (the key file holds the old blob, or a new one
	// that unwraps to the same key), "restored" (the key file did not
	// unwrap to the same key: the old blob is back), "kept" (it could
	// not be checked; see Note).
	Action string `json:"action"`
	Note   string `json:"note"`
}

// resolveLeftovers deals with the backup directories an interrupted run
// left: <dir>/#sql-rewrap-backup-*/ and extra (the --backup-dir), each
// blob compared with the key file it came from.
func resolveLeftovers(ctx context.Context, s *keyfile.Store, dir string, extra string, kms Decrypter, r *Runner, dryRun bool) ([]Leftover, error) {
	var dirs []string
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, de := range des {
		if de.IsDir() && strings.HasPrefix(de.Name(), BackupDirPrefix) {
			dirs = append(dirs, filepath.Join(dir, de.Name()))
		}
	}
	if extra != "" {
		if st, err := os.Stat(extra); err == nil && st.IsDir() && !containsDir(dirs, extra) {
			dirs = append(dirs, extra)
		}
	}
	out := []Leftover{}
	for _, d := range dirs {
		bs := keyfile.New(d)
		l, err := bs.List()
		if err != nil {
			return out, err
		}
		got := make([]Leftover, len(l.Entries))
		if _, err := r.Each(ctx, l.Entries, "checking leftovers", func(ctx context.Context, w *Worker, i int, e keyfile.Entry) error {
			got[i] = resolveOne(ctx, w, s, bs, e, kms, dryRun)
			return nil
		}); err != nil {
			return out, err
		}
		out = append(out, got...)
		if !dryRun {
			// Temporary files of a backup being written when the run
			// was killed (its key file was not replaced yet).
			bs.CleanTemp()
		}
		if !dryRun && removeIfEmpty(d) {
			out = append(out, Leftover{Backup: d, Action: "removed", Note: "the backup directory of an interrupted run, now empty"})
		}
	}
	return out, nil
}

func containsDir(dirs []string, d string) bool {
	for _, x := range dirs {
		if SameDir(x, d) {
			return true
		}
	}
	return false
}

// resolveOne compares one old blob with the key file it was taken from.
func resolveOne(ctx context.Context, w *Worker, s *keyfile.Store, bs *keyfile.Store, e keyfile.Entry, kms Decrypter, dryRun bool) Leftover {
	lo := Leftover{Backup: bs.Path(e.ID, e.Version)}
	name := keyfile.Name(e.ID, e.Version)
	old, err := bs.Read(e.ID, e.Version)
	if err != nil {
		lo.Action, lo.Note = "kept", "the backup cannot be read: "+err.Error()
		return lo
	}
	cur, err := s.Read(e.ID, e.Version)
	switch {
	case errors.Is(err, keyfile.ErrNotFound):
		lo.Action, lo.Note = "kept", fmt.Sprintf("%s is missing from the key directory: copy the backup back if that version is still needed", name)
		return lo
	case err != nil:
		lo.Action, lo.Note = "kept", err.Error()
		return lo
	case bytes.Equal(cur, old):
		lo.Action, lo.Note = "removed", name+" still holds the old blob (the run stopped before replacing it)"
		return finish(lo, dryRun)
	}
	var nOld, nCur int
	errOld := w.Call(ctx, func(ctx context.Context) (err error) { nOld, _, err = kms.DecryptWithKeyID(ctx, old, w.A); return })
	errCur := w.Call(ctx, func(ctx context.Context) (err error) { nCur, _, err = kms.DecryptWithKeyID(ctx, cur, w.B); return })
	switch {
	case errOld != nil:
		lo.Action, lo.Note = "kept", fmt.Sprintf("the old blob of %s cannot be checked (it does not unwrap: %v); it stays until it can", name, errOld)
	case errCur == nil && nOld == nCur && bytes.Equal(w.A[:nOld], w.B[:nCur]):
		lo.Action, lo.Note = "removed", name+" holds a new blob that unwraps to the same key (the run stopped before removing the backup)"
		return finish(lo, dryRun)
	case errCur != nil && ctx.Err() != nil:
		lo.Action, lo.Note = "kept", "interrupted: "+errCur.Error()
	default:
		why := "it unwraps to another key"
		if errCur != nil {
			why = "it does not unwrap: " + errCur.Error()
		}
		lo.Action, lo.Note = "restored", fmt.Sprintf("%s held a blob that cannot replace the old one (%s): the old blob is back", name, why)
		if dryRun {
			return lo
		}
		if err := s.Replace(e.ID, e.Version, old); err != nil {
			lo.Action, lo.Note = "kept", fmt.Sprintf("%s does not unwrap to its old key (%s) and putting the old blob back failed: %v; copy %s over it", name, why, err, lo.Backup)
			return lo
		}
		return finish(lo, false)
	}
	return lo
}

func finish(lo Leftover, dryRun bool) Leftover {
	if dryRun {
		lo.Note += "; --dry-run: would remove the backup"
		return lo
	}
	if err := removeBackup(lo.Backup); err != nil {
		lo.Action, lo.Note = "kept", err.Error()
	}
	return lo
}
