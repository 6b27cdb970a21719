package recovery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/mariadb-go/aws_key_management/internal/kmserr"
	"github.com/mariadb-go/aws_key_management/internal/lockedmem"
)

// Header is the first line of a bundle's (age-encrypted) contents.
const Header = "aws_key_management recovery bundle 1"

// MaxSize bounds a bundle's decrypted contents: 200,000 key versions.
const MaxSize = 64 << 20

// maxBlob is the largest CiphertextBlob KMS returns (keyfile.MaxBlobSize).
const maxBlob = 6144

// Entry is one key version: the blob of its key file (what KMS Decrypt
// takes) and its plaintext key (16 or 32 bytes).
type Entry struct {
	ID, Version uint32
	Blob        []byte
	Key         []byte
}

// Meta says where and when a bundle was made.
type Meta struct {
	Created time.Time
	Host    string
	Source  string // the key directory
}

// Seal writes entries, sealed with age for recipients, to w. The
// plaintext keys are written only into age's encrypting stream.
func Seal(w io.Writer, recipients []age.Recipient, meta Meta, entries []Entry) error {
	if len(recipients) == 0 {
		return errors.New("sealing a recovery bundle: no recipient (a recovery key's public part, age1...)")
	}
	aw, err := age.Encrypt(w, recipients...)
	if err != nil {
		return fmt.Errorf("sealing a recovery bundle: %w", err)
	}
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].ID != sorted[j].ID {
			return sorted[i].ID < sorted[j].ID
		}
		return sorted[i].Version < sorted[j].Version
	})
	bw := bufio.NewWriter(aw)
	fmt.Fprintf(bw, "%s\ncreated %s\nhost %s\nsource %s\n", Header, meta.Created.UTC().Format(time.RFC3339),
		oneWord(meta.Host), oneWord(meta.Source))
	line := make([]byte, 0, 64+base64.StdEncoding.EncodedLen(maxBlob))
	for _, e := range sorted {
		if err := checkEntry(e); err != nil {
			return fmt.Errorf("sealing a recovery bundle: %w", err)
		}
		line = fmt.Appendf(line[:0], "key %d %d ", e.ID, e.Version)
		line = base64.StdEncoding.AppendEncode(line, e.Blob)
		line = append(line, ' ')
		line = base64.StdEncoding.AppendEncode(line, e.Key)
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			lockedmem.Wipe(line)
			return fmt.Errorf("sealing a recovery bundle: %w", err)
		}
	}
	lockedmem.Wipe(line[:cap(line)])
	fmt.Fprintf(bw, "end %d\n", len(sorted))
	err = bw.Flush()
	// bufio's buffer held key lines: overwrite it before it is dropped.
	bw.Reset(io.Discard)
	if err != nil {
		return fmt.Errorf("sealing a recovery bundle: %w", err)
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("sealing a recovery bundle: %w", err)
	}
	return nil
}

func oneWord(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' {
			return '_'
		}
		return r
	}, s)
}

func checkEntry(e Entry) error {
	switch {
	case e.ID == 0 || e.Version == 0:
		return fmt.Errorf("key %d, version %d: not a key id and version", e.ID, e.Version)
	case len(e.Blob) == 0 || len(e.Blob) > maxBlob:
		return fmt.Errorf("key %d, version %d: a blob of %d bytes", e.ID, e.Version, len(e.Blob))
	case len(e.Key) != 16 && len(e.Key) != 32:
		return fmt.Errorf("key %d, version %d: a key of %d bytes (16 or 32)", e.ID, e.Version, len(e.Key))
	}
	return nil
}

// Bundle is an opened recovery bundle. Its keys live in locked memory
// until Close. It serves the key manager's KMS calls from the bundle
// (recovery on a host with no route to KMS): Decrypt of a blob it holds,
// and nothing else.
type Bundle struct {
	Meta
	Entries []Entry
	arena   *lockedmem.Arena
	byBlob  map[[sha256.Size]byte]int
}

// Open decrypts a bundle with identities (the recovery key) and checks
// it whole: a bundle cut short, changed, or sealed for another key is an
// error, and nothing of it is kept.
func Open(r io.Reader, identities []age.Identity) (*Bundle, error) {
	ar, err := age.Decrypt(r, identities...)
	var nomatch *age.NoIdentityMatchError
	if errors.As(err, &nomatch) {
		return nil, fmt.Errorf("opening the recovery bundle: it was sealed for another recovery key (%w)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening the recovery bundle: %w", err)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(ar, MaxSize+1))
	raw := buf.Bytes()
	defer lockedmem.Wipe(raw[:cap(raw)])
	if err != nil {
		return nil, fmt.Errorf("opening the recovery bundle: %w", err)
	}
	if n > MaxSize {
		return nil, fmt.Errorf("opening the recovery bundle: its contents exceed %d bytes", MaxSize)
	}
	b := &Bundle{arena: lockedmem.New(), byBlob: map[[sha256.Size]byte]int{}}
	if err := b.parse(raw); err != nil {
		b.Close()
		return nil, fmt.Errorf("opening the recovery bundle: %w", err)
	}
	return b, nil
}

func (b *Bundle) parse(raw []byte) error {
	lines := bytes.Split(raw, []byte{'\n'})
	if len(lines) < 5 || string(lines[0]) != Header {
		return errors.New("not a recovery bundle of this plugin (its first line is not \"" + Header + "\")")
	}
	for i, want := range []string{"created ", "host ", "source "} {
		rest, ok := bytes.CutPrefix(lines[i+1], []byte(want))
		if !ok {
			return fmt.Errorf("line %d: want %q", i+2, strings.TrimSpace(want))
		}
		switch i {
		case 0:
			t, err := time.Parse(time.RFC3339, string(rest))
			if err != nil {
				return fmt.Errorf("line 2: %w", err)
			}
			b.Created = t
		case 1:
			b.Host = string(rest)
		case 2:
			b.Source = string(rest)
		}
	}
	seen := map[uint64]bool{}
	for n, line := range lines[4:] {
		lineNo := n + 5
		if len(line) == 0 && lineNo == len(lines) {
			break // the last newline: no end line came
		}
		if end, ok := bytes.CutPrefix(line, []byte("end ")); ok {
			count, err := strconv.Atoi(string(end))
			if err != nil || count != len(b.Entries) {
				return fmt.Errorf("line %d: the bundle says %q, it holds %d key versions", lineNo, line, len(b.Entries))
			}
			if rest := lines[4+n+1:]; len(rest) != 1 || len(rest[0]) != 0 {
				return fmt.Errorf("line %d: text after the end line", lineNo)
			}
			return nil
		}
		e, err := b.parseKey(line)
		if err != nil {
			return fmt.Errorf("line %d: %w", lineNo, err)
		}
		k := uint64(e.ID)<<32 | uint64(e.Version)
		if seen[k] {
			return fmt.Errorf("line %d: key %d, version %d twice", lineNo, e.ID, e.Version)
		}
		seen[k] = true
		b.byBlob[sha256.Sum256(e.Blob)] = len(b.Entries)
		b.Entries = append(b.Entries, e)
	}
	return errors.New("the bundle is cut short (no end line)")
}

// parseKey reads "key <id> <version> <blob base64> <key base64>", the key
// decoded straight into locked memory.
func (b *Bundle) parseKey(line []byte) (Entry, error) {
	f := bytes.Fields(line)
	if len(f) != 5 || string(f[0]) != "key" {
		return Entry{}, errors.New("want: key <id> <version> <blob> <key>")
	}
	id, err1 := strconv.ParseUint(string(f[1]), 10, 32)
	ver, err2 := strconv.ParseUint(string(f[2]), 10, 32)
	if err1 != nil || err2 != nil || id == 0 || ver == 0 {
		return Entry{}, fmt.Errorf("%q %q: not a key id and version", f[1], f[2])
	}
	blob := make([]byte, base64.StdEncoding.DecodedLen(len(f[3])))
	n, err := base64.StdEncoding.Decode(blob, f[3])
	if err != nil || n == 0 || n > maxBlob {
		return Entry{}, fmt.Errorf("key %d, version %d: a bad blob", id, ver)
	}
	slot, err := b.arena.Alloc()
	if err != nil {
		return Entry{}, err
	}
	if base64.StdEncoding.DecodedLen(len(f[4])) > len(slot)+2 {
		b.arena.Release(slot)
		return Entry{}, fmt.Errorf("key %d, version %d: a key longer than %d bytes", id, ver, len(slot))
	}
	k, err := base64.StdEncoding.Decode(slot, f[4])
	if err != nil || (k != 16 && k != 32) {
		b.arena.Release(slot)
		return Entry{}, fmt.Errorf("key %d, version %d: a bad key (16 or 32 bytes, base64)", id, ver)
	}
	return Entry{ID: uint32(id), Version: uint32(ver), Blob: blob[:n], Key: slot[:k:k]}, nil
}

// Close wipes the keys.
func (b *Bundle) Close() {
	b.arena.Close(true)
	for i := range b.Entries {
		b.Entries[i].Key = nil
	}
}

// Operations, as the error log names them.
const (
	opDecrypt  = "Decrypt"
	opGenerate = "GenerateDataKeyWithoutPlaintext"
)

// Decrypt gives the key of a blob the bundle holds (keys.KMS).
func (b *Bundle) Decrypt(_ context.Context, blob, dst []byte) (int, error) {
	i, ok := b.byBlob[sha256.Sum256(blob)]
	if !ok {
		return 0, kmserr.Fail(opDecrypt, "NotInRecoveryBundle", fmt.Sprintf("this key file is not in the recovery bundle (made %s from %s)", b.Created.Format(time.RFC3339), b.Source))
	}
	e := b.Entries[i]
	if e.Key == nil {
		return 0, kmserr.Fail(opDecrypt, "RecoveryBundleClosed", "the recovery bundle was closed")
	}
	if len(e.Key) > len(dst) {
		return 0, kmserr.Fail(opDecrypt, "KeyTooLong", fmt.Sprintf("a key of %d bytes does not fit in %d", len(e.Key), len(dst)))
	}
	return copy(dst, e.Key), nil
}

// GenerateDataKeyWithoutPlaintext is refused: a recovery has no KMS, so
// no new key ids and no rotation (keys.KMS).
func (b *Bundle) GenerateDataKeyWithoutPlaintext(context.Context, string, string) ([]byte, error) {
	return nil, kmserr.Fail(opGenerate, "RecoveryMode", "keys come from a recovery bundle: no new keys or key versions until the server runs with KMS again")
}

// OpenFiles opens the bundle at path with the identities of an age
// identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes them).
func OpenFiles(path, identityFile string) (*Bundle, error) {
	idf, err := os.Open(identityFile)
	if err != nil {
		return nil, fmt.Errorf("reading the recovery key: %w", err)
	}
	ids, err := age.ParseIdentities(idf)
	idf.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the recovery key %s: %w", identityFile, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the recovery bundle: %w", err)
	}
	defer f.Close()
	b, err := Open(f, ids)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
