package keyops

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/lockedmem"
	"github.com/mariadb-go/aws_key_management/internal/recovery"
)

// ExportResult is what Export did.
type ExportResult struct {
	Directory  string    `json:"directory"`
	Output     string    `json:"output"`
	Recipients int       `json:"recipients"`
	Versions   int       `json:"versions"`
	Failed     []Check   `json:"failed"`
	Ignored    []Ignored `json:"ignored"`
	Throttled  int       `json:"throttled"`
	Written    bool      `json:"written"`
}

// Export unwraps every key file of dir and seals all of them (blob and
// key) into a recovery bundle at output, for recipients (the public part
// of recovery keys kept apart from the server). It is all or nothing: if
// a single key file does not unwrap, no bundle is written (a bundle
// missing a version cannot restore the data encrypted with it). The
// bundle is written to a temporary file in output's directory, fsync'ed
// and renamed into place, mode 0600; an existing output is replaced only
// with replace. Plaintext keys stay in locked memory until sealed.
func Export(ctx context.Context, dir string, kms Decrypter, r *Runner, recipients []age.Recipient, output string, replace bool, meta recovery.Meta) (*ExportResult, error) {
	if len(recipients) == 0 {
		return nil, errors.New("no recipient: give --recipient age1... (the public part of a recovery key, from `mariadb-aws-keys keygen`)")
	}
	if _, err := os.Lstat(output); err == nil && !replace {
		return nil, fmt.Errorf("%s exists: give another --output, or --replace to write over it", output)
	}
	s, l, err := OpenDir(dir)
	if err != nil {
		return nil, err
	}
	res := &ExportResult{Directory: dir, Output: output, Recipients: len(recipients), Ignored: ignored(l), Failed: []Check{}}
	mem := lockedmem.New()
	defer mem.Close(true)
	entries := make([]recovery.Entry, len(l.Entries))
	errs, err := r.Each(ctx, l.Entries, "exporting", func(ctx context.Context, w *Worker, i int, e keyfile.Entry) error {
		n, _, blob, err := Unwrap(ctx, w, kms, s, e, w.A)
		if err != nil {
			return err
		}
		if err := checkKeyLength(n); err != nil {
			return fmt.Errorf("%s: %w", s.Path(e.ID, e.Version), err)
		}
		slot, err := mem.Alloc()
		if err != nil {
			return fmt.Errorf("memory for keys: %w", err)
		}
		copy(slot, w.A[:n])
		entries[i] = recovery.Entry{ID: e.ID, Version: e.Version, Blob: blob, Key: slot[:n:n]}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Throttled = r.Throttled()
	for i, e := range l.Entries {
		if errs[i] != nil {
			res.Failed = append(res.Failed, Check{KeyID: e.ID, Version: e.Version, File: keyfile.Name(e.ID, e.Version), Error: errs[i].Error()})
		}
	}
	if len(res.Failed) > 0 || ctx.Err() != nil {
		return res, nil
	}
	res.Versions = len(entries)
	if err := writeBundle(output, recipients, meta, entries); err != nil {
		return res, err
	}
	res.Written = true
	return res, nil
}

// writeBundle seals entries into a temporary file beside output, fsyncs
// it and renames it into place (then fsyncs the directory).
func writeBundle(output string, recipients []age.Recipient, meta recovery.Meta, entries []recovery.Entry) error {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("writing %s: %w", output, err)
	}
	tmp := output + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s: %w", output, err)
	}
	err = recovery.Seal(f, recipients, meta, entries)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, output)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", output, err)
	}
	if d, err := os.Open(filepath.Dir(output)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Encrypter wraps a plaintext key under a KMS key: kmsbackend.Client has
// it (import --to).
type Encrypter interface {
	Decrypter
	Encrypt(ctx context.Context, keyID string, plaintext []byte) (blob []byte, keyARN string, err error)
}

// ImportOptions says how Import writes the key files of a bundle.
type ImportOptions struct {
	// To, if set, names the KMS key to wrap every key under (KMS Encrypt:
	// another account or region than the bundle's, say); empty means
	// the bundle's own blobs are written back, as they were (for KMS
	// keys the server can still use).
	To     string
	Runner *Runner
}

// Imported is what Import did with one key version.
type Imported struct {
	KeyID   uint32 `json:"key_id"`
	Version uint32 `json:"version"`
	File    string `json:"file"`
	Action  string `json:"action"` // written, present, failed
	KeyARN  string `json:"key_arn,omitempty"`
	Error   string `json:"error,omitempty"`
}

// ImportResult is what Import did.
type ImportResult struct {
	Directory string     `json:"directory"`
	To        string     `json:"to,omitempty"`
	Keys      []Imported `json:"keys"`
	Written   int        `json:"written"`
	Present   int        `json:"present"`
	Failed    int        `json:"failed"`
	Throttled int        `json:"throttled"`
}

// Import writes the key versions of an opened bundle as key files of dir,
// each one proven first (with To, the new blob must unwrap to the bundle's
// key). A key file that exists already is left alone: it counts as
// present if it holds the bundle's blob (or, with To, unwraps to the
// bundle's key), and as failed otherwise (another key under that name:
// the data encrypted with the bundle's key could not be read with it). It
// never replaces a file. The directory must exist.
func Import(ctx context.Context, b *recovery.Bundle, dir string, kms Encrypter, o ImportOptions) (*ImportResult, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory: create the key directory first (mode 0700, owned by the server's user)", dir)
	}
	s := keyfile.New(dir)
	res := &ImportResult{Directory: dir, To: o.To, Keys: make([]Imported, len(b.Entries))}
	entries := make([]keyfile.Entry, len(b.Entries))
	for i, e := range b.Entries {
		entries[i] = keyfile.Entry{ID: e.ID, Version: e.Version}
	}
	errs, err := o.Runner.Each(ctx, entries, "importing", func(ctx context.Context, w *Worker, i int, _ keyfile.Entry) error {
		e := b.Entries[i]
		k := &res.Keys[i]
		if old, err := s.Read(e.ID, e.Version); err == nil {
			k.Action = "present"
			if o.To == "" {
				if !bytes.Equal(old, e.Blob) {
					return fmt.Errorf("%s exists and holds another blob than the bundle's: move it away to import this version", s.Path(e.ID, e.Version))
				}
				return nil
			}
			n, arn, err := w.decrypt(ctx, kms, old, w.B)
			if err != nil || !bytes.Equal(w.B[:n], e.Key) {
				return fmt.Errorf("%s exists and does not unwrap to the bundle's key (%v): move it away to import this version", s.Path(e.ID, e.Version), err)
			}
			k.KeyARN = arn
			return nil
		} else if !errors.Is(err, keyfile.ErrNotFound) && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		blob := e.Blob
		if o.To != "" {
			err := w.Call(ctx, func(ctx context.Context) error {
				var err error
				blob, k.KeyARN, err = kms.Encrypt(ctx, o.To, e.Key)
				return err
			})
			if err != nil {
				return fmt.Errorf("wrapping key %d, version %d under %s: %w", e.ID, e.Version, o.To, err)
			}
			n, _, err := w.decrypt(ctx, kms, blob, w.B)
			if err != nil || !bytes.Equal(w.B[:n], e.Key) {
				return fmt.Errorf("key %d, version %d: the new blob does not unwrap to the bundle's key (%v); nothing written", e.ID, e.Version, err)
			}
		}
		if err := s.Create(e.ID, e.Version, blob); err != nil {
			return err
		}
		k.Action = "written"
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Throttled = o.Runner.Throttled()
	for i, e := range b.Entries {
		k := &res.Keys[i]
		k.KeyID, k.Version, k.File = e.ID, e.Version, keyfile.Name(e.ID, e.Version)
		switch {
		case errs[i] != nil:
			k.Action, k.Error = "failed", errs[i].Error()
			res.Failed++
		case k.Action == "present":
			res.Present++
		default:
			res.Written++
		}
	}
	return res, nil
}

// NewMeta describes a bundle made now from dir on this host.
func NewMeta(dir string, now time.Time) recovery.Meta {
	host, _ := os.Hostname()
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return recovery.Meta{Created: now, Host: host, Source: abs}
}
