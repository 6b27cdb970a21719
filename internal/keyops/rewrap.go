package keyops

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
)

// RewrapOptions says how Rewrap works.
type RewrapOptions struct {
	// To names the KMS key to wrap every data key under: key id, key
	// ARN, alias name or alias ARN.
	To string
	// DryRun: find out and report what would change, change nothing.
	DryRun bool
	// BackupDir is where old blobs are kept until the new ones are
	// verified; "" means <dir>/#sql-rewrap-backup-<UTC time>/.
	BackupDir string
	Runner    *Runner
	Now       func() time.Time
}

// Actions of a key file in a rewrap.
const (
	ActionRewrapped   = "rewrapped"
	ActionSkipped     = "skipped"      // already under the target
	ActionWouldRewrap = "would-rewrap" // --dry-run
	ActionFailed      = "failed"
)

// Rewrapped is what Rewrap did with one key file.
type Rewrapped struct {
	KeyID   uint32 `json:"key_id"`
	Version uint32 `json:"version"`
	File    string `json:"file"`
	Action  string `json:"action"`
	// From is the KMS key that wrapped the file before, To the one that
	// wraps it now (for skipped files, both are the target).
	From  string `json:"from_arn,omitempty"`
	To    string `json:"to_arn,omitempty"`
	Error string `json:"error,omitempty"`
}

// RewrapResult is the outcome of Rewrap.
type RewrapResult struct {
	Directory string `json:"directory"`
	// Target is --to as given; TargetARN the key it names.
	Target    string      `json:"target"`
	TargetARN string      `json:"target_arn"`
	DryRun    bool        `json:"dry_run"`
	BackupDir string      `json:"backup_dir"`
	Keys      []Rewrapped `json:"keys"`
	Rewrapped int         `json:"rewrapped"`
	Skipped   int         `json:"skipped"`
	Failed    int         `json:"failed"`
	// WouldRewrap counts the files --dry-run would rewrap.
	WouldRewrap int `json:"would_rewrap"`
	Throttled   int `json:"throttled"`
	// Leftovers is what this run did with the backups of an interrupted
	// one.
	Leftovers []Leftover `json:"leftovers"`
	// NewFiles are key files that appeared during the run (a rotation
	// under the old master key): run rewrap again for them.
	NewFiles []string `json:"new_files"`
	Warnings []string `json:"warnings"`
}

// ErrBadTarget: --to names no KMS key that can wrap data keys.
var ErrBadTarget = errors.New("cannot re-wrap under this key")

// rewrapHook, for tests only, runs after each step of a file ("backup",
// "replace", "verify"); an error it returns is that step's.
var rewrapHook func(step string, e keyfile.Entry) error

func hook(step string, e keyfile.Entry) error {
	if rewrapHook == nil {
		return nil
	}
	return rewrapHook(step, e)
}

// Rewrap re-wraps every key file of dir under the KMS key o.To with KMS
// ReEncrypt (the data key never leaves KMS). Per file: unwrap (to learn
// its KMS key, and its key for the check); skip it if it is already under
// the target; ReEncrypt; save the old blob in the backup directory
// (fsync'ed); replace the file atomically (keyfile.Store.Replace); unwrap
// the new file and compare the keys; then remove the backup. If the new
// file does not unwrap to the same key, the old blob is put back. A run
// can be interrupted at any point and started again: leftovers of an
// interrupted run are checked first (see Leftover). The error return is
// for bad input (not a key directory, a target KMS key that cannot be
// used): nothing is changed then.
func Rewrap(ctx context.Context, dir string, kms KMS, o RewrapOptions) (*RewrapResult, error) {
	s, l, err := OpenDir(dir)
	if err != nil {
		return nil, err
	}
	if o.Runner == nil {
		o.Runner = &Runner{}
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	res := &RewrapResult{Directory: dir, Target: o.To, DryRun: o.DryRun, Keys: make([]Rewrapped, len(l.Entries)),
		Leftovers: []Leftover{}, NewFiles: []string{}, Warnings: []string{}}
	var info struct{ ARN, State, Usage, Spec string }
	err = o.Runner.Call(ctx, func(ctx context.Context) error {
		k, err := kms.DescribeKey(ctx, o.To)
		info.ARN, info.State, info.Usage, info.Spec = k.ARN, k.State, k.Usage, k.Spec
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("--to %s: %w: %w (the credentials need kms:DescribeKey on it)", o.To, ErrBadTarget, err)
	}
	switch {
	case info.State != "Enabled":
		return nil, fmt.Errorf("--to %s (%s): %w: the key is %s; enable it, or choose another", o.To, info.ARN, ErrBadTarget, info.State)
	case info.Usage != "" && info.Usage != "ENCRYPT_DECRYPT" || info.Spec != "" && info.Spec != "SYMMETRIC_DEFAULT":
		return nil, fmt.Errorf("--to %s (%s): %w: a %s key for %s; data keys need a SYMMETRIC_DEFAULT key for ENCRYPT_DECRYPT", o.To, info.ARN, ErrBadTarget, info.Spec, info.Usage)
	}
	res.TargetARN = info.ARN
	bd := &backupDir{path: o.BackupDir}
	if bd.path == "" {
		bd.path = defaultBackupDir(dir, now())
	}
	if !o.DryRun {
		res.BackupDir = bd.path
	}
	if res.Leftovers, err = resolveLeftovers(ctx, s, dir, o.BackupDir, kms, o.Runner, o.DryRun); err != nil {
		return nil, fmt.Errorf("checking the backups of an earlier run: %w", err)
	}
	errs, err := o.Runner.Each(ctx, l.Entries, "re-wrapping", func(ctx context.Context, w *Worker, i int, e keyfile.Entry) error {
		r := &res.Keys[i]
		action, err := rewrapOne(ctx, w, s, kms, e, info.ARN, bd, o.DryRun, r)
		r.Action = action
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, e := range l.Entries {
		r := &res.Keys[i]
		r.KeyID, r.Version, r.File = e.ID, e.Version, keyfile.Name(e.ID, e.Version)
		if errs[i] != nil {
			r.Action, r.Error = ActionFailed, errs[i].Error()
		}
		switch r.Action {
		case ActionRewrapped:
			res.Rewrapped++
		case ActionSkipped:
			res.Skipped++
		case ActionWouldRewrap:
			res.WouldRewrap++
		default:
			r.Action = ActionFailed
			res.Failed++
		}
	}
	if !o.DryRun {
		removeIfEmpty(bd.path)
	}
	res.Throttled = o.Runner.Throttled()
	if after, err := s.Scan(); err == nil {
		before := map[keyfile.Entry]bool{}
		for _, e := range l.Entries {
			before[e] = true
		}
		for _, e := range after {
			if !before[e] {
				res.NewFiles = append(res.NewFiles, keyfile.Name(e.ID, e.Version))
			}
		}
		if len(res.NewFiles) > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%d key file(s) appeared during the run (a rotation under the old master key?): set aws_key_management_master_key_id to the new key and run rewrap again", len(res.NewFiles)))
		}
	}
	return res, nil
}

// rewrapOne re-wraps one key file; see Rewrap. w.A holds the key as the
// old blob unwraps, w.B as the new one does.
func rewrapOne(ctx context.Context, w *Worker, s *keyfile.Store, kms KMS, e keyfile.Entry, target string, bd *backupDir, dryRun bool, r *Rewrapped) (string, error) {
	n, from, old, err := Unwrap(ctx, w, kms, s, e, w.A)
	r.From = from
	if err != nil {
		return "", err
	}
	if err := checkKeyLength(n); err != nil {
		return "", fmt.Errorf("%s: %w", s.Path(e.ID, e.Version), err)
	}
	if from == target {
		r.To = target
		return ActionSkipped, nil
	}
	if dryRun {
		r.To = target
		return ActionWouldRewrap, nil
	}
	var newBlob []byte
	err = w.Call(ctx, func(ctx context.Context) error {
		out, err := kms.ReEncrypt(ctx, old, target)
		newBlob = out.Blob
		if err == nil && out.KeyARN != target {
			return fmt.Errorf("KMS re-wrapped %s under %s, not under %s", keyfile.Name(e.ID, e.Version), out.KeyARN, target)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("re-wrapping %s (the credentials need kms:ReEncryptFrom on %s and kms:ReEncryptTo on %s): %w", s.Path(e.ID, e.Version), from, target, err)
	}
	// The file may have changed since it was read (another run, an
	// operator): leave it alone then.
	if cur, err := s.Read(e.ID, e.Version); err != nil || !bytes.Equal(cur, old) {
		return "", fmt.Errorf("%s changed while it was being re-wrapped; run rewrap again", s.Path(e.ID, e.Version))
	}
	backup, err := bd.save(e, old)
	if err == nil {
		err = hook("backup", e)
	}
	if err != nil {
		return "", err
	}
	if err := s.Replace(e.ID, e.Version, newBlob); err != nil {
		// The old blob is in place (or, if only the directory fsync
		// failed, the new one, which the next run checks): keep the
		// backup either way.
		return "", fmt.Errorf("%w; the old blob is kept in %s", err, backup)
	}
	if err := hook("replace", e); err != nil {
		return "", err
	}
	// Check what is on disk now, as the server will read it.
	m, to, _, err := Unwrap(ctx, w, kms, s, e, w.B)
	if err == nil {
		err = hook("verify", e)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return "", fmt.Errorf("interrupted before the new %s was checked; the old blob is kept in %s and the next run checks it", keyfile.Name(e.ID, e.Version), backup)
	case err != nil:
		return "", restoreOld(s, e, old, backup, fmt.Sprintf("the new blob does not unwrap (%v)", err))
	case to != target || m != n || subtle.ConstantTimeCompare(w.A[:n], w.B[:m]) != 1:
		return "", restoreOld(s, e, old, backup, fmt.Sprintf("the new blob unwraps to another key (under %s)", to))
	}
	r.To = to
	// Re-wrapped and checked. Should the removal fail, the next run
	// finds the backup and removes it.
	removeBackup(backup)
	return ActionRewrapped, nil
}

// restoreOld puts the old blob back after a failed check of the new one.
func restoreOld(s *keyfile.Store, e keyfile.Entry, old []byte, backup, why string) error {
	if err := s.Replace(e.ID, e.Version, old); err != nil {
		return fmt.Errorf("%s: %s, and putting the old blob back failed (%v): copy %s over it", s.Path(e.ID, e.Version), why, err, backup)
	}
	removeBackup(backup)
	return fmt.Errorf("%s: %s; the old blob is back in place", s.Path(e.ID, e.Version), why)
}
