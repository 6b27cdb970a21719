package keyops

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/keyusage"
)

// KeyFile is one key file as list shows it.
type KeyFile struct {
	KeyID   uint32    `json:"key_id"`
	Version uint32    `json:"version"`
	File    string    `json:"file"`
	Size    int64     `json:"size"`
	Mode    string    `json:"mode"`
	ModTime time.Time `json:"mtime"`
	// AgeSeconds is how long ago the file was last modified (created,
	// for files written by the plugin; rewrap keeps the time).
	AgeSeconds int64 `json:"age_seconds"`
	// CMK is the ARN of the KMS key that wraps it (with --kms), and
	// KeyBytes the length of the data key.
	CMK      string `json:"cmk_arn,omitempty"`
	KeyBytes int    `json:"key_bytes,omitempty"`
	// Error: the file could not be read, or (with --kms) unwrapped.
	Error string `json:"error,omitempty"`
	// Latest: the highest version of its key id in the directory.
	Latest bool `json:"latest"`
	// Status is in-use, latest, kept, not-needed or unknown (see
	// keyusage); UsedBy and Reasons say why.
	Status  string   `json:"status"`
	UsedBy  []string `json:"used_by"`
	Reasons []string `json:"reasons"`
}

// ListResult is the outcome of List.
type ListResult struct {
	Directory string    `json:"directory"`
	Keys      []KeyFile `json:"keys"`
	Ignored   []Ignored `json:"ignored"`
	// Leftovers are files an interrupted write or rewrap left: temporary
	// files (the plugin removes them at start) and rewrap backup
	// directories (the next rewrap deals with them).
	Leftovers []string `json:"leftovers"`
	// Server is what the server reported (with --server), nil otherwise.
	Server    *keyusage.Usage `json:"server"`
	Warnings  []string        `json:"warnings"`
	Throttled int             `json:"throttled"`
	// DataFiles is the data files checked against the key files (nil
	// when none were read).
	DataFiles *DataCheck `json:"data_files,omitempty"`
}

// ListOptions says what List does beyond reading the directory.
type ListOptions struct {
	// KMS, if set, unwraps every file to tell its KMS key (--kms).
	KMS    Decrypter
	Runner *Runner
	// Usage, if set, is what the server uses: each version then gets a
	// status.
	Usage *keyusage.Usage
	Now   func() time.Time
}

// List describes every key file of dir.
func List(ctx context.Context, dir string, o ListOptions) (*ListResult, error) {
	s, l, err := OpenDir(dir)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if o.Runner == nil {
		o.Runner = &Runner{}
	}
	res := &ListResult{Directory: dir, Ignored: ignored(l), Keys: make([]KeyFile, len(l.Entries)), Server: o.Usage,
		Leftovers: leftovers(dir), Warnings: []string{}}
	versions := make([]keyusage.Version, len(l.Entries))
	for i, e := range l.Entries {
		k := &res.Keys[i]
		k.KeyID, k.Version, k.File = e.ID, e.Version, keyfile.Name(e.ID, e.Version)
		st, err := os.Lstat(s.Path(e.ID, e.Version))
		if err != nil {
			k.Error = err.Error()
		} else {
			k.Size, k.Mode, k.ModTime = st.Size(), fmt.Sprintf("%04o", st.Mode().Perm()), st.ModTime().UTC()
			k.AgeSeconds = int64(now().Sub(st.ModTime()) / time.Second)
			if !st.Mode().IsRegular() {
				k.Error = fmt.Sprintf("not a regular file (%s): the plugin refuses it", st.Mode().Type())
			}
		}
		versions[i] = keyusage.Version{ID: e.ID, Version: e.Version, ModTime: k.ModTime}
	}
	if o.KMS != nil {
		errs, err := o.Runner.Each(ctx, l.Entries, "unwrapping", func(ctx context.Context, w *Worker, i int, e keyfile.Entry) error {
			n, arn, _, err := Unwrap(ctx, w, o.KMS, s, e, w.A)
			res.Keys[i].CMK, res.Keys[i].KeyBytes = arn, n
			return err
		})
		if err != nil {
			return nil, err
		}
		for i, err := range errs {
			if err != nil && res.Keys[i].Error == "" {
				res.Keys[i].Error = err.Error()
			}
		}
		res.Throttled = o.Runner.Throttled()
	}
	verdicts, warnings := keyusage.Classify(versions, o.Usage)
	res.Warnings = append(res.Warnings, warnings...)
	latest := map[uint32]uint32{}
	for _, e := range l.Entries {
		latest[e.ID] = max(latest[e.ID], e.Version)
	}
	for i := range res.Keys {
		k := &res.Keys[i]
		v := verdicts[[2]uint32{k.KeyID, k.Version}]
		k.Latest = k.Version == latest[k.KeyID]
		k.Status, k.UsedBy, k.Reasons = v.Status, nonNil(v.UsedBy), nonNil(v.Reasons)
	}
	if o.Usage != nil && o.Usage.KeyDir != "" && !SameDir(o.Usage.KeyDir, dir) {
		res.Warnings = append(res.Warnings, fmt.Sprintf("the server reads its key files from %s, not from %s: the use shown is that server's", o.Usage.KeyDir, dir))
	}
	for _, ig := range res.Ignored {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s is ignored by the plugin: %s", ig.Name, ig.Reason))
	}
	return res, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// SameDir reports whether a and b name the same directory.
func SameDir(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(sa, sb)
	}
	return filepath.Clean(a) == filepath.Clean(b)
}

// leftovers lists what interrupted writes left in dir: temporary key
// files and rewrap backup directories.
func leftovers(dir string) []string {
	out := []string{}
	des, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, de := range des {
		name := de.Name()
		switch {
		case de.IsDir() && strings.HasPrefix(name, BackupDirPrefix):
			out = append(out, name+"/")
		case !de.IsDir() && keyfile.IsTempName(name):
			out = append(out, name)
		}
	}
	return out
}
