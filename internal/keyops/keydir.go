package keyops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
)

// Decrypter unwraps a key file's blob: kmsbackend.Client has it.
type Decrypter interface {
	// DecryptWithKeyID unwraps blob into dst and returns the key's
	// length and the ARN of the KMS key that wrapped it.
	DecryptWithKeyID(ctx context.Context, blob, dst []byte) (int, string, error)
}

// KMS is what re-wrapping needs: kmsbackend.Client has it.
type KMS interface {
	Decrypter
	ReEncrypt(ctx context.Context, blob []byte, destKeyID string) (kmsbackend.ReEncrypted, error)
	DescribeKey(ctx context.Context, keyID string) (kmsbackend.KeyInfo, error)
}

var _ KMS = (*kmsbackend.Client)(nil)

// ErrNotKeyDir: the directory holds no key file.
var ErrNotKeyDir = errors.New("not a key directory")

// Ignored is a name like a key file's that the plugin ignores, and why.
type Ignored struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// OpenDir checks that dir is a key directory (a directory with at least
// one key file) and lists it. The errors say what dir is instead and what
// to give.
func OpenDir(dir string) (*keyfile.Store, keyfile.Listing, error) {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, keyfile.Listing{}, fmt.Errorf("%s does not exist: give the directory of the key files (the datadir, or aws_key_management_keyfile_dir)", dir)
	case err != nil:
		return nil, keyfile.Listing{}, err
	case !st.IsDir():
		return nil, keyfile.Listing{}, fmt.Errorf("%s is not a directory: give the directory of the key files (the datadir, or aws_key_management_keyfile_dir), not a file", dir)
	}
	s := keyfile.New(dir)
	l, err := s.List()
	if err != nil {
		return nil, keyfile.Listing{}, err
	}
	if len(l.Entries) == 0 {
		why := ""
		if len(l.Ignored) > 0 {
			var names []string
			for _, ig := range l.Ignored {
				names = append(names, ig.Name)
			}
			why = fmt.Sprintf(" (names the plugin ignores: %s)", strings.Join(names, ", "))
		}
		return nil, l, fmt.Errorf("no key files (%s<id>.<version>) in %s%s: %w; give the datadir or aws_key_management_keyfile_dir",
			keyfile.Prefix, dir, why, ErrNotKeyDir)
	}
	return s, l, nil
}

func ignored(l keyfile.Listing) []Ignored {
	out := []Ignored{}
	for _, ig := range l.Ignored {
		out = append(out, Ignored{Name: ig.Name, Reason: ig.Reason.Error()})
	}
	return out
}

// Unwrap reads the key file of e and unwraps it into dst through the
// worker's backoff. It returns the key's length, the ARN of the KMS key
// that wraps it and the blob. It is the step every operation on key files
// shares (list --kms, verify, rewrap; an export would too).
func Unwrap(ctx context.Context, w *Worker, kms Decrypter, s *keyfile.Store, e keyfile.Entry, dst []byte) (n int, arn string, blob []byte, err error) {
	blob, err = s.Read(e.ID, e.Version)
	if err != nil {
		return 0, "", nil, err
	}
	n, arn, err = w.decrypt(ctx, kms, blob, dst)
	if err != nil {
		return 0, "", blob, fmt.Errorf("unwrapping %s: %w", s.Path(e.ID, e.Version), err)
	}
	return n, arn, blob, nil
}

// decrypt unwraps blob into dst through the worker's backoff.
func (w *Worker) decrypt(ctx context.Context, kms Decrypter, blob, dst []byte) (n int, arn string, err error) {
	err = w.Call(ctx, func(ctx context.Context) error {
		var err error
		n, arn, err = kms.DecryptWithKeyID(ctx, blob, dst)
		return err
	})
	return n, arn, err
}

// checkKeyLength is the server's rule: AES-128 or AES-256 keys.
func checkKeyLength(n int) error {
	if n != 16 && n != 32 {
		return fmt.Errorf("the key has %d bytes; the server takes 16 (AES_128) or 32 (AES_256)", n)
	}
	return nil
}
