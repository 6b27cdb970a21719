package keyops

import (
	"context"
	"fmt"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
)

// Check is what verify found for one key file.
type Check struct {
	KeyID    uint32 `json:"key_id"`
	Version  uint32 `json:"version"`
	File     string `json:"file"`
	OK       bool   `json:"ok"`
	KeyBytes int    `json:"key_bytes,omitempty"`
	CMK      string `json:"cmk_arn,omitempty"`
	Error    string `json:"error,omitempty"`
}

// VerifyResult is the outcome of Verify.
type VerifyResult struct {
	Directory string    `json:"directory"`
	Keys      []Check   `json:"keys"`
	Ignored   []Ignored `json:"ignored"`
	Checked   int       `json:"checked"`
	OK        int       `json:"ok"`
	Failed    int       `json:"failed"`
	Throttled int       `json:"throttled"`
	// Warnings: versions missing between others (data encrypted with
	// them cannot be read), names the plugin ignores.
	Warnings []string `json:"warnings"`
	// DataFiles is the data files checked against the key files (nil
	// when none were read).
	DataFiles *DataCheck `json:"data_files,omitempty"`
}

// Verify unwraps every key file of dir with kms (in parallel, as the
// runner allows) and checks each key's length. A file that fails is
// reported with the reason; the error return is for a directory that is
// not a key directory.
func Verify(ctx context.Context, dir string, kms Decrypter, r *Runner) (*VerifyResult, error) {
	s, l, err := OpenDir(dir)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{Directory: dir, Ignored: ignored(l), Keys: make([]Check, len(l.Entries)), Warnings: gapWarnings(l.Entries)}
	for _, ig := range res.Ignored {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s is ignored by the plugin: %s", ig.Name, ig.Reason))
	}
	errs, err := r.Each(ctx, l.Entries, "verifying", func(ctx context.Context, w *Worker, i int, e keyfile.Entry) error {
		n, arn, _, err := Unwrap(ctx, w, kms, s, e, w.A)
		res.Keys[i].CMK, res.Keys[i].KeyBytes = arn, n
		if err != nil {
			return err
		}
		if err := checkKeyLength(n); err != nil {
			return fmt.Errorf("%s: %w", s.Path(e.ID, e.Version), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, e := range l.Entries {
		c := &res.Keys[i]
		c.KeyID, c.Version, c.File = e.ID, e.Version, keyfile.Name(e.ID, e.Version)
		res.Checked++
		if errs[i] != nil {
			c.Error = errs[i].Error()
			res.Failed++
			continue
		}
		c.OK = true
		res.OK++
	}
	res.Throttled = r.Throttled()
	return res, nil
}

// gapWarnings names versions missing below the latest of each key: pages
// or logs encrypted with them cannot be read.
func gapWarnings(entries []keyfile.Entry) []string {
	out := []string{}
	for i := 0; i < len(entries); i++ {
		e := entries[i]
		prev := uint32(0)
		if i > 0 && entries[i-1].ID == e.ID {
			prev = entries[i-1].Version
		}
		if e.Version > prev+1 {
			missing := fmt.Sprintf("version %d", prev+1)
			if e.Version > prev+2 {
				missing = fmt.Sprintf("versions %d to %d", prev+1, e.Version-1)
			}
			out = append(out, fmt.Sprintf("key %d: %s missing (below %s): data encrypted with them cannot be read; if they were archived, make sure nothing needs them",
				e.ID, missing, keyfile.Name(e.ID, e.Version)))
		}
	}
	return out
}
