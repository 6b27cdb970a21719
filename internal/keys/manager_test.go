package keys_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/keys"
	"github.com/mariadb-go/aws_key_management/internal/kmserr"
	"github.com/mariadb-go/aws_key_management/internal/mock"
)

// waitLimit bounds every wait of these tests.
const waitLimit = 10 * time.Second

// fakeKMS implements keys.KMS. Blobs are mock.Seal blobs, so any fakeKMS
// (or mock.KMS) opens the blobs of any other.
type fakeKMS struct {
	mu        sync.Mutex
	genCalls  int
	decCalls  int
	masterIDs []string
	specs     []string

	genErr  error                // every Generate fails with it
	decErr  error                // every Decrypt fails with it
	genFail func(call int) error // per Generate call (1-based), if set
	keyLen  int                  // Decrypt returns a key of this length, if > 0

	// genBlock, if set, makes Generate wait until it is closed (or the
	// context ends); genEntered receives one value per Generate that
	// starts waiting.
	genBlock   chan struct{}
	genEntered chan struct{}
}

func newFake() *fakeKMS { return &fakeKMS{} }

func (f *fakeKMS) GenerateDataKeyWithoutPlaintext(ctx context.Context, masterKeyID, keySpec string) ([]byte, error) {
	f.mu.Lock()
	f.genCalls++
	call := f.genCalls
	f.masterIDs = append(f.masterIDs, masterKeyID)
	f.specs = append(f.specs, keySpec)
	err := f.genErr
	if f.genFail != nil && err == nil {
		err = f.genFail(call)
	}
	block, entered := f.genBlock, f.genEntered
	f.mu.Unlock()
	if block != nil {
		if entered != nil {
			entered <- struct{}{}
		}
		select {
		case <-block:
		case <-ctx.Done():
			return nil, kmserr.New("GenerateDataKeyWithoutPlaintext", fmt.Errorf("fake generate: %w", ctx.Err()))
		}
	}
	if err != nil {
		return nil, kmserr.New("GenerateDataKeyWithoutPlaintext", err)
	}
	n := 16
	if keySpec == "AES_256" {
		n = 32
	}
	key := make([]byte, n)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return mock.Seal(masterKeyID, key)
}

func (f *fakeKMS) Decrypt(ctx context.Context, blob, dst []byte) (int, error) {
	f.mu.Lock()
	f.decCalls++
	err, n := f.decErr, f.keyLen
	f.mu.Unlock()
	if err != nil {
		return 0, kmserr.New("Decrypt", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, kmserr.New("Decrypt", err)
	}
	if n > 0 {
		if n > len(dst) {
			return 0, kmserr.New("Decrypt", fmt.Errorf("a key of %d bytes does not fit", n))
		}
		return copy(dst, bytes.Repeat([]byte{0x42}, n)), nil
	}
	n, err = mock.OpenInto(blob, dst)
	if err != nil {
		return 0, kmserr.New("Decrypt", err)
	}
	return n, nil
}

func (f *fakeKMS) calls() (gen, dec int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.genCalls, f.decCalls
}

func (f *fakeKMS) set(fn func(f *fakeKMS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeKMS) wantCalls(t *testing.T, gen, dec int) {
	t.Helper()
	if g, d := f.calls(); g != gen || d != dec {
		t.Errorf("KMS calls: generate %d, decrypt %d; want %d, %d", g, d, gen, dec)
	}
}

// fakeLog records messages by kind. Client messages reach the client
// only from the statement's thread (the C side writes to the current
// THD): one sent from another goroutine than the test's is recorded as
// kind "Lost"+kind, so that a test expecting it fails.
type fakeLog struct {
	mu    sync.Mutex
	msgs  []logMsg
	owner string // goroutine of the test ("goroutine N")
}

type logMsg struct{ kind, text string }

func (l *fakeLog) add(kind, msg string) {
	l.mu.Lock()
	l.msgs = append(l.msgs, logMsg{kind, msg})
	l.mu.Unlock()
}

// The prefixes are the ones the ABI layer's logger adds (cabi.Log).
func (l *fakeLog) Note(msg string)          { l.add("Note", "AWS KMS plugin: "+msg) }
func (l *fakeLog) Warning(msg string)       { l.add("Warning", "AWS KMS plugin: "+msg) }
func (l *fakeLog) Error(msg string)         { l.add("Error", "AWS KMS plugin: "+msg) }
func (l *fakeLog) KMSError(msg string)      { l.add("Error", "AWS KMS plugin : "+msg) }
func (l *fakeLog) ClientError(msg string)   { l.add(l.client("ClientError"), msg) }
func (l *fakeLog) ClientWarning(msg string) { l.add(l.client("ClientWarning"), msg) }

// client is kind, or "Lost"+kind when the caller is not the goroutine
// that made the log.
func (l *fakeLog) client(kind string) string {
	if l.owner != "" && goroutine() != l.owner {
		return "Lost" + kind
	}
	return kind
}

// goroutine is "goroutine N" of the calling goroutine.
func goroutine() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(string(buf), " [")
	return id
}

func (l *fakeLog) all() []logMsg {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logMsg(nil), l.msgs...)
}

func (l *fakeLog) reset() {
	l.mu.Lock()
	l.msgs = nil
	l.mu.Unlock()
}

// of returns the messages of one kind, in order.
func (l *fakeLog) of(kind string) []string {
	var out []string
	for _, m := range l.all() {
		if m.kind == kind {
			out = append(out, m.text)
		}
	}
	return out
}

// index returns the position of the first message of kind equal to text
// (or containing it, if sub), or -1.
func (l *fakeLog) index(kind, text string, sub bool) int {
	for i, m := range l.all() {
		if m.kind == kind && (m.text == text || sub && strings.Contains(m.text, text)) {
			return i
		}
	}
	return -1
}

func (l *fakeLog) want(t *testing.T, kind, text string) {
	t.Helper()
	if l.index(kind, text, false) < 0 {
		t.Errorf("no %s %q; log: %v", kind, text, l.all())
	}
}

func (l *fakeLog) wantSub(t *testing.T, kind, text string) {
	t.Helper()
	if l.index(kind, text, true) < 0 {
		t.Errorf("no %s containing %q; log: %v", kind, text, l.all())
	}
}

func (l *fakeLog) wantNone(t *testing.T, kinds ...string) {
	t.Helper()
	for _, k := range kinds {
		if m := l.of(k); len(m) > 0 {
			t.Errorf("unexpected %s messages: %q", k, m)
		}
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const (
	retryMin = time.Second
	retryMax = 8 * time.Second
)

// env is a Manager with its fakes.
type env struct {
	m      *keys.Manager
	kms    keys.KMS
	fake   *fakeKMS // nil when kms is not a fakeKMS
	log    *fakeLog
	clock  *fakeClock
	dir    string
	store  *keyfile.Store
	master atomic.Pointer[string]
	spec   atomic.Pointer[string]
	cfg    keys.Config
}

type option func(*keys.Config)

func withTimeout(d time.Duration) option { return func(c *keys.Config) { c.Timeout = d } }

// newEnv makes a Manager over dir (a new temporary directory if empty)
// and opens it. The master key id is "alias/test" and the key spec
// AES_128 until changed.
func newEnv(t *testing.T, dir string, kms keys.KMS, opts ...option) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if kms == nil {
		kms = newFake()
	}
	e := &env{kms: kms, log: &fakeLog{owner: goroutine()}, clock: &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, dir: dir, store: keyfile.New(dir)}
	e.fake, _ = kms.(*fakeKMS)
	e.setMaster("alias/test")
	e.setSpec("AES_128")
	cfg := keys.Config{
		MasterKeyID: func() string { return *e.master.Load() },
		KeySpec:     func() string { return *e.spec.Load() },
		KMS:         kms,
		Store:       e.store,
		Log:         e.log,
		Timeout:     waitLimit,
		RetryMin:    retryMin,
		RetryMax:    retryMax,
		Now:         e.clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	e.cfg = cfg
	e.m = keys.New(cfg)
	if err := e.m.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
	return e
}

// reopen closes the Manager and makes a new one over the same directory,
// KMS, log and clock, as a plugin restart does.
func (e *env) reopen(t *testing.T) {
	t.Helper()
	e.m.Close(waitLimit)
	e.m = keys.New(e.cfg)
	if err := e.m.Open(); err != nil {
		t.Fatalf("Open: %v", err)
	}
}

// eventually waits (bounded) until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitLimit)
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *env) setMaster(s string) { e.master.Store(&s) }
func (e *env) setSpec(s string)   { e.spec.Store(&s) }

// key returns the plaintext of a version through GetKey.
func (e *env) key(t *testing.T, id, ver uint32) []byte {
	t.Helper()
	buf := make([]byte, keys.MaxKeyLength)
	n, code := e.m.GetKey(id, ver, buf)
	if code != 0 {
		t.Fatalf("GetKey(%d, %d) = %d, %d", id, ver, n, code)
	}
	return buf[:n]
}

// fileKey returns the plaintext of a key file, opened with the mock.
func (e *env) fileKey(t *testing.T, id, ver uint32) []byte {
	t.Helper()
	blob, err := e.store.Read(id, ver)
	if err != nil {
		t.Fatal(err)
	}
	key, err := mock.Open(blob)
	if err != nil {
		t.Fatalf("opening %s: %v", keyfile.Name(id, ver), err)
	}
	return key
}

func (e *env) exists(id, ver uint32) bool {
	_, err := os.Lstat(filepath.Join(e.dir, keyfile.Name(id, ver)))
	return err == nil
}

func (e *env) wantLatest(t *testing.T, id, want uint32) {
	t.Helper()
	if got := e.m.LatestKeyVersion(id); got != want {
		t.Fatalf("LatestKeyVersion(%d) = %d, want %d; log: %v", id, got, want, e.log.all())
	}
}

// writeKeyFile stores a mock-sealed key as a version, behind the
// manager's back, and returns the plaintext.
func writeKeyFile(t *testing.T, dir string, id, ver uint32, n int) []byte {
	t.Helper()
	key := make([]byte, n)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	blob, err := mock.Seal("alias/other-server", key)
	if err != nil {
		t.Fatal(err)
	}
	if err := keyfile.New(dir).Create(id, ver, blob); err != nil {
		t.Fatal(err)
	}
	return key
}

// within runs f and fails the test if it does not return in time.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("%s did not return within %v", what, waitLimit)
	}
}

func TestLatestKeyVersionGeneratesVersion1(t *testing.T) {
	for _, tc := range []struct {
		spec string
		bits int
	}{{"AES_128", 128}, {"AES_256", 256}} {
		t.Run(tc.spec, func(t *testing.T) {
			e := newEnv(t, "", nil)
			e.setSpec(tc.spec)
			e.setMaster("arn:aws:kms:eu-west-1:111122223333:key/abc")
			e.wantLatest(t, 5, 1)
			e.fake.wantCalls(t, 1, 1)
			if !reflect.DeepEqual(e.fake.masterIDs, []string{"arn:aws:kms:eu-west-1:111122223333:key/abc"}) ||
				!reflect.DeepEqual(e.fake.specs, []string{tc.spec}) {
				t.Errorf("Generate got master keys %q, specs %q", e.fake.masterIDs, e.fake.specs)
			}
			if !e.exists(5, 1) {
				t.Fatalf("%s was not created", keyfile.Name(5, 1))
			}
			gen := e.log.index("Note", "AWS KMS plugin: generated encrypted datakey for key id=5, version=1", false)
			loaded := e.log.index("Note", fmt.Sprintf("AWS KMS plugin: loaded key 5, version 1, key length %d bit", tc.bits), false)
			if gen < 0 || loaded < 0 || gen > loaded {
				t.Errorf("want the generated note before the loaded note; log: %v", e.log.all())
			}
			e.log.wantNone(t, "Warning", "Error", "ClientError", "ClientWarning")

			key := e.key(t, 5, 1)
			if len(key)*8 != tc.bits {
				t.Errorf("key has %d bits, want %d", len(key)*8, tc.bits)
			}
			if !bytes.Equal(key, e.fileKey(t, 5, 1)) {
				t.Errorf("served key differs from the key file's")
			}

			// Served from the cache from now on.
			for i := 0; i < 3; i++ {
				e.wantLatest(t, 5, 1)
				if !bytes.Equal(e.key(t, 5, 1), key) {
					t.Fatalf("key changed")
				}
			}
			e.fake.wantCalls(t, 1, 1)
			if ids := e.m.KeyIDs(); !reflect.DeepEqual(ids, []uint32{5}) {
				t.Errorf("KeyIDs = %v, want [5]", ids)
			}
		})
	}
}

func TestLatestKeyVersionWithoutMasterKey(t *testing.T) {
	e := newEnv(t, "", nil)
	e.setMaster("")
	const msg = "Can't generate encryption key, because 'aws_key_management_master_key_id' parameter is not set"
	invalid := func(step string) {
		t.Helper()
		if v := e.m.LatestKeyVersion(3); v != keys.VersionInvalid {
			t.Fatalf("%s: LatestKeyVersion = %d, want VersionInvalid", step, v)
		}
	}
	invalid("first")
	if got := e.log.of("ClientError"); !reflect.DeepEqual(got, []string{msg}) {
		t.Errorf("ClientError messages %q, want [%q]", got, msg)
	}
	// An empty master key id backs off like a failed generation: the
	// error is not repeated for every call.
	invalid("in backoff")
	e.clock.Advance(retryMin)
	invalid("after the backoff")
	if got := e.log.of("ClientError"); !reflect.DeepEqual(got, []string{msg, msg}) {
		t.Errorf("ClientError messages %q, want two of %q", got, msg)
	}
	e.fake.wantCalls(t, 0, 0)
	des, err := os.ReadDir(e.dir)
	if err != nil || len(des) != 0 {
		t.Errorf("key directory has %d entries (%v), want none", len(des), err)
	}
	if ids := e.m.KeyIDs(); len(ids) != 0 {
		t.Errorf("KeyIDs = %v", ids)
	}
	// The master key id is read at each generation (after the backoff,
	// now 2*RetryMin).
	e.setMaster("alias/now-set")
	e.clock.Advance(2 * retryMin)
	e.wantLatest(t, 3, 1)
	if !reflect.DeepEqual(e.fake.masterIDs, []string{"alias/now-set"}) {
		t.Errorf("Generate master keys %q", e.fake.masterIDs)
	}
}

func TestGetKeyBuffer(t *testing.T) {
	e := newEnv(t, "", nil)
	e.setSpec("AES_256")
	e.wantLatest(t, 2, 1)
	want := e.fileKey(t, 2, 1)
	tests := []struct {
		name     string
		dst      []byte
		wantCode uint32
	}{
		{"nil", nil, keys.BufferTooSmall},
		{"empty", []byte{}, keys.BufferTooSmall},
		{"short by one", make([]byte, 31), keys.BufferTooSmall},
		{"exact", make([]byte, 32), 0},
		{"larger", make([]byte, 48), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.dst {
				tc.dst[i] = 0xee
			}
			n, code := e.m.GetKey(2, 1, tc.dst)
			if n != 32 || code != tc.wantCode {
				t.Fatalf("GetKey = %d, %d; want 32, %d", n, code, tc.wantCode)
			}
			if code == 0 {
				if !bytes.Equal(tc.dst[:n], want) {
					t.Errorf("copied %x, want %x", tc.dst[:n], want)
				}
				for _, b := range tc.dst[n:] {
					if b != 0xee {
						t.Fatalf("bytes past the key were written: %x", tc.dst)
					}
				}
			} else {
				for _, b := range tc.dst {
					if b != 0xee {
						t.Fatalf("a too small buffer was written: %x", tc.dst)
					}
				}
			}
		})
	}
	e.fake.wantCalls(t, 1, 1)
}

func TestGetKeyInvalid(t *testing.T) {
	e := newEnv(t, "", nil)
	e.wantLatest(t, 4, 1)
	e.log.reset()
	buf := make([]byte, 32)
	for _, tc := range []struct{ id, ver uint32 }{
		{0, 1},
		{4, 0},
		{0, 0},
		{4, keys.VersionInvalid},
		{4, 2},  // version that does not exist
		{4, 99}, // far beyond
		{9, 1},  // key id that does not exist: GetKey never generates
	} {
		n, code := e.m.GetKey(tc.id, tc.ver, buf)
		if n != 0 || code != keys.VersionInvalid {
			t.Errorf("GetKey(%d, %d) = %d, %d; want 0, VersionInvalid", tc.id, tc.ver, n, code)
		}
	}
	e.fake.wantCalls(t, 1, 1)
	e.log.wantSub(t, "Warning", "AWS KMS plugin: key 4, version 2 does not exist")
	e.log.wantSub(t, "Warning", "AWS KMS plugin: key 9, version 1 does not exist")
	// Asking for missing versions does not create phantom versions.
	e.wantLatest(t, 4, 1)
	if ids := e.m.KeyIDs(); !reflect.DeepEqual(ids, []uint32{4}) {
		t.Errorf("KeyIDs = %v, want [4]", ids)
	}
	if e.exists(9, 1) || e.exists(4, 2) {
		t.Errorf("a key file was created by GetKey")
	}
	// A missing version is looked up again each time (it may appear).
	e.m.GetKey(4, 2, buf)
	e.fake.wantCalls(t, 1, 1)
	want := writeKeyFile(t, e.dir, 4, 2, 16)
	if got := e.key(t, 4, 2); !bytes.Equal(got, want) {
		t.Errorf("GetKey(4, 2) = %x, want %x", got, want)
	}
}

func TestGetKeyLearnsNewerVersion(t *testing.T) {
	e := newEnv(t, "", nil)
	e.wantLatest(t, 6, 1)
	// Another server sharing the directory rotated key 6.
	want := writeKeyFile(t, e.dir, 6, 2, 32)
	e.wantLatest(t, 6, 1) // cached: no rescan
	if got := e.key(t, 6, 2); !bytes.Equal(got, want) {
		t.Fatalf("GetKey(6, 2) = %x, want %x", got, want)
	}
	e.log.want(t, "Note", "AWS KMS plugin: loaded key 6, version 2, key length 256 bit")
	// The version proved to exist, so it is now the latest.
	e.wantLatest(t, 6, 2)
	e.fake.wantCalls(t, 1, 2)
}

func TestOpenLearnsExistingVersions(t *testing.T) {
	dir := t.TempDir()
	first := newEnv(t, dir, mock.New())
	first.wantLatest(t, 1, 1)
	first.wantLatest(t, 2, 1)
	first.wantLatest(t, 300000, 1)
	if failed := first.m.Rotate(1); failed != 0 {
		t.Fatalf("Rotate(1) = %d", failed)
	}
	first.wantLatest(t, 1, 2)
	k11, k12, k21 := first.key(t, 1, 1), first.key(t, 1, 2), first.key(t, 2, 1)
	first.m.Close(waitLimit)

	e := newEnv(t, dir, nil)
	if ids := e.m.KeyIDs(); !reflect.DeepEqual(ids, []uint32{1, 2, 300000}) {
		t.Errorf("KeyIDs after Open = %v, want [1 2 300000]", ids)
	}
	e.fake.wantCalls(t, 0, 0)
	e.wantLatest(t, 1, 2)
	e.fake.wantCalls(t, 0, 1)
	if !bytes.Equal(e.key(t, 1, 2), k12) {
		t.Errorf("key 1 version 2 differs after reopening")
	}
	e.fake.wantCalls(t, 0, 1)
	if !bytes.Equal(e.key(t, 1, 1), k11) || !bytes.Equal(e.key(t, 2, 1), k21) {
		t.Errorf("old keys differ after reopening")
	}
	// Unwrapping an older version does not move "latest" back.
	e.wantLatest(t, 1, 2)
	e.wantLatest(t, 2, 1)
	e.fake.wantCalls(t, 0, 3)
	e.log.want(t, "Note", "AWS KMS plugin: loaded key 1, version 2, key length 128 bit")
	e.log.wantNone(t, "Warning", "Error", "ClientError", "ClientWarning")
}

func TestOpenRemovesTempFiles(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"aws-kms-key.1.1.tmp-0123456789ab": "partial",
		"aws-kms-key.2.1":                  "", // a key file, possibly damaged: kept
		"notes.tmp-x":                      "not ours",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnv(t, dir, nil)
	if _, err := os.Lstat(filepath.Join(dir, "aws-kms-key.1.1.tmp-0123456789ab")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file still there (%v)", err)
	}
	for _, keep := range []string{"aws-kms-key.2.1", "notes.tmp-x"} {
		if _, err := os.Lstat(filepath.Join(dir, keep)); err != nil {
			t.Errorf("%s was removed: %v", keep, err)
		}
	}
	e.log.want(t, "Note", "AWS KMS plugin: removed aws-kms-key.1.1.tmp-0123456789ab, left over from an interrupted key file write")
	if n := len(e.log.of("Note")); n != 1 {
		t.Errorf("%d notes, want 1: %v", n, e.log.all())
	}
	if ids := e.m.KeyIDs(); !reflect.DeepEqual(ids, []uint32{2}) {
		t.Errorf("KeyIDs = %v, want [2] (a temporary file is no key)", ids)
	}
	e.fake.wantCalls(t, 0, 0)
}

func TestOpenMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	m := keys.New(keys.Config{
		MasterKeyID: func() string { return "k" },
		KeySpec:     func() string { return "AES_128" },
		KMS:         newFake(),
		Store:       keyfile.New(dir),
		Log:         &fakeLog{},
	})
	err := m.Open()
	if err == nil || !strings.Contains(err.Error(), "opening key store") || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open = %v, want an error naming the directory", err)
	}
}

func TestInvalidKeyFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "aws-kms-key.1.1"), nil, 0o400); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, dir, nil)
	if v := e.m.LatestKeyVersion(1); v != keys.VersionInvalid {
		t.Fatalf("LatestKeyVersion = %d, want VersionInvalid", v)
	}
	e.fake.wantCalls(t, 0, 0)
	e.log.wantSub(t, "Warning", "AWS KMS plugin: invalid key file: ")
	e.log.wantSub(t, "Warning", "aws-kms-key.1.1: key file is empty")
	e.log.want(t, "Warning", "AWS KMS plugin: key 1, version 1 could not be decrypted")
	// The damaged file is not replaced by a new version 1.
	if fi, err := os.Stat(filepath.Join(dir, "aws-kms-key.1.1")); err != nil || fi.Size() != 0 {
		t.Errorf("key file changed: %v", err)
	}
}

func TestConcurrentFirstUse(t *testing.T) {
	e := newEnv(t, "", nil)
	release := make(chan struct{})
	e.fake.set(func(f *fakeKMS) {
		f.genBlock = release
		f.genEntered = make(chan struct{}, 100)
	})
	const n = 50
	var (
		wg      sync.WaitGroup
		started sync.WaitGroup
		results = make([]uint32, n)
		go1     = make(chan struct{})
	)
	started.Add(n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			<-go1
			results[i] = e.m.LatestKeyVersion(7)
		}()
	}
	started.Wait()
	close(go1)
	select {
	case <-e.fake.genEntered:
	case <-time.After(waitLimit):
		t.Fatal("Generate was not called")
	}
	// Give the other callers a moment to pile up behind the generation.
	time.Sleep(20 * time.Millisecond)
	close(release)
	within(t, "the concurrent callers", wg.Wait)
	for i, v := range results {
		if v != 1 {
			t.Errorf("caller %d got %d, want 1", i, v)
		}
	}
	e.fake.wantCalls(t, 1, 1)
	if len(e.fake.genEntered) != 0 {
		t.Errorf("Generate entered again")
	}
}

func TestSlowGenerateDoesNotBlockOtherKeys(t *testing.T) {
	e := newEnv(t, "", nil)
	e.wantLatest(t, 1, 1)
	want1 := e.key(t, 1, 1)
	// Key 2 exists on disk but is not loaded yet.
	want2 := writeKeyFile(t, e.dir, 2, 1, 16)

	release := make(chan struct{})
	e.fake.set(func(f *fakeKMS) {
		f.genBlock = release
		f.genEntered = make(chan struct{}, 10)
	})
	got21 := make(chan uint32, 1)
	go func() { got21 <- e.m.LatestKeyVersion(21) }()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	select {
	case <-e.fake.genEntered:
	case <-time.After(waitLimit):
		t.Fatal("Generate for key 21 was not called")
	}

	within(t, "calls for key 1 and 2 while key 21 is generated", func() {
		if v := e.m.LatestKeyVersion(1); v != 1 {
			t.Errorf("LatestKeyVersion(1) = %d", v)
		}
		buf := make([]byte, 32)
		if n, code := e.m.GetKey(1, 1, buf); code != 0 || !bytes.Equal(buf[:n], want1) {
			t.Errorf("GetKey(1, 1) = %d, %d", n, code)
		}
		if v := e.m.LatestKeyVersion(2); v != 1 {
			t.Errorf("LatestKeyVersion(2) = %d", v)
		}
		if n, code := e.m.GetKey(2, 1, buf); code != 0 || !bytes.Equal(buf[:n], want2) {
			t.Errorf("GetKey(2, 1) = %d, %d", n, code)
		}
		if ids := e.m.KeyIDs(); !reflect.DeepEqual(ids, []uint32{1, 2}) {
			t.Errorf("KeyIDs = %v", ids)
		}
	})
	select {
	case v := <-got21:
		t.Fatalf("LatestKeyVersion(21) returned %d before Generate was released", v)
	default:
	}
	close(release)
	select {
	case v := <-got21:
		if v != 1 {
			t.Errorf("LatestKeyVersion(21) = %d, want 1", v)
		}
	case <-time.After(waitLimit):
		t.Fatal("LatestKeyVersion(21) did not return")
	}
}

func TestKMSTimeout(t *testing.T) {
	e := newEnv(t, "", nil, withTimeout(50*time.Millisecond))
	e.fake.set(func(f *fakeKMS) { f.genBlock = make(chan struct{}) }) // never released
	start := time.Now()
	if v := e.m.LatestKeyVersion(3); v != keys.VersionInvalid {
		t.Fatalf("LatestKeyVersion = %d, want VersionInvalid", v)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v with a 50ms timeout", d)
	}
	e.log.wantSub(t, "Error", "AWS KMS plugin : KMS Client API 'GenerateDataKeyWithoutPlaintext' failed : RequestTimeout - ")
	if e.exists(3, 1) {
		t.Errorf("key file created")
	}
}

// apiErr is a KMS service error that is not the mock's type.
type apiErr struct{ code, msg string }

func (e apiErr) Error() string        { return "api error " + e.code + ": " + e.msg }
func (e apiErr) ErrorCode() string    { return e.code }
func (e apiErr) ErrorMessage() string { return e.msg }

func TestDecryptFailureBackoff(t *testing.T) {
	dir := t.TempDir()
	want := writeKeyFile(t, dir, 1, 1, 16)
	e := newEnv(t, dir, nil)
	e.fake.set(func(f *fakeKMS) {
		f.decErr = fmt.Errorf("decrypting: %w", apiErr{"KMSInternalException", "internal failure"})
	})
	invalid := func(step string) {
		t.Helper()
		if v := e.m.LatestKeyVersion(1); v != keys.VersionInvalid {
			t.Fatalf("%s: LatestKeyVersion = %d, want VersionInvalid", step, v)
		}
	}
	invalid("first")
	e.fake.wantCalls(t, 0, 1)
	e.log.want(t, "Warning", "AWS KMS plugin: key 1, version 1 could not be decrypted")
	e.log.want(t, "Error", "AWS KMS plugin : KMS Client API 'Decrypt' failed : KMSInternalException - internal failure (aws-kms-key.1.1)")

	// Within the backoff no KMS call is made, by either entry point.
	invalid("again")
	if n, code := e.m.GetKey(1, 1, make([]byte, 32)); code != keys.VersionInvalid {
		t.Errorf("GetKey = %d, %d; want VersionInvalid", n, code)
	}
	e.clock.Advance(retryMin - time.Nanosecond)
	invalid("just before RetryMin")
	e.fake.wantCalls(t, 0, 1)

	// After RetryMin it is tried again (and fails again).
	e.clock.Advance(time.Nanosecond)
	invalid("at RetryMin")
	e.fake.wantCalls(t, 0, 2)

	// The wait doubles: 2s now.
	e.clock.Advance(retryMin)
	invalid("1s into a 2s backoff")
	e.fake.wantCalls(t, 0, 2)
	e.clock.Advance(retryMin)
	invalid("after 2s")
	e.fake.wantCalls(t, 0, 3)
	// 4s, then 8s, then capped at RetryMax (8s).
	e.clock.Advance(4 * time.Second)
	invalid("after 4s")
	e.clock.Advance(8 * time.Second)
	invalid("after 8s")
	e.fake.wantCalls(t, 0, 5)
	e.clock.Advance(retryMax - time.Nanosecond)
	invalid("before the capped backoff")
	e.fake.wantCalls(t, 0, 5)
	e.clock.Advance(time.Nanosecond)
	invalid("at the capped backoff")
	e.fake.wantCalls(t, 0, 6)

	// KMS recovers: the next attempt after the backoff succeeds.
	e.fake.set(func(f *fakeKMS) { f.decErr = nil })
	invalid("recovered but still backing off")
	e.fake.wantCalls(t, 0, 6)
	e.clock.Advance(retryMax)
	e.wantLatest(t, 1, 1)
	e.fake.wantCalls(t, 0, 7)
	if got := e.key(t, 1, 1); !bytes.Equal(got, want) {
		t.Errorf("key = %x, want %x", got, want)
	}
	e.wantLatest(t, 1, 1)
	e.fake.wantCalls(t, 0, 7)

	// A failure without an exception name is a RequestError.
	e.reopen(t)
	e.fake.set(func(f *fakeKMS) { f.decErr = errors.New("connection reset") })
	invalid("after reopen")
	e.log.want(t, "Error", "AWS KMS plugin : KMS Client API 'Decrypt' failed : RequestError - connection reset (aws-kms-key.1.1)")
	e.fake.set(func(f *fakeKMS) { f.decErr = nil })
	e.clock.Advance(retryMin)
	e.wantLatest(t, 1, 1)
	e.fake.wantCalls(t, 0, 9)
}

const disabledAdvice = "the KMS master key is disabled: nothing can be wrapped or unwrapped with it until it is enabled (mariadb-aws-keys enable-key, or aws kms enable-key --key-id KEY)"

func TestGenerateFailureBackoff(t *testing.T) {
	e := newEnv(t, "", nil)
	e.fake.set(func(f *fakeKMS) { f.genErr = &mock.Error{Code: "DisabledException", Message: "key is disabled"} })
	invalid := func(step string) {
		t.Helper()
		if v := e.m.LatestKeyVersion(3); v != keys.VersionInvalid {
			t.Fatalf("%s: LatestKeyVersion = %d, want VersionInvalid", step, v)
		}
	}
	invalid("first")
	e.fake.wantCalls(t, 1, 0)
	e.log.want(t, "Error", "AWS KMS plugin : KMS Client API 'GenerateDataKeyWithoutPlaintext' failed : DisabledException - key is disabled; "+disabledAdvice)
	e.log.want(t, "ClientWarning", "AWS KMS refused a new data key for key id=3: "+disabledAdvice)
	if e.exists(3, 1) {
		t.Fatal("key file created although generation failed")
	}
	invalid("in backoff")
	e.clock.Advance(retryMin - time.Nanosecond)
	invalid("just before RetryMin")
	e.fake.wantCalls(t, 1, 0)
	// Other key ids have their own backoff.
	if v := e.m.LatestKeyVersion(4); v != keys.VersionInvalid {
		t.Fatalf("LatestKeyVersion(4) = %d", v)
	}
	e.fake.wantCalls(t, 2, 0)

	e.clock.Advance(time.Nanosecond)
	invalid("at RetryMin")
	e.fake.wantCalls(t, 3, 0)
	e.clock.Advance(retryMin)
	invalid("in the doubled backoff")
	e.fake.wantCalls(t, 3, 0)

	e.fake.set(func(f *fakeKMS) { f.genErr = nil })
	e.clock.Advance(retryMin)
	e.wantLatest(t, 3, 1)
	e.fake.wantCalls(t, 4, 1)
	if !e.exists(3, 1) {
		t.Fatal("no key file after a successful generation")
	}
	if !bytes.Equal(e.key(t, 3, 1), e.fileKey(t, 3, 1)) {
		t.Errorf("served key differs from the file's")
	}
	if ids := e.m.KeyIDs(); !reflect.DeepEqual(ids, []uint32{3}) {
		t.Errorf("KeyIDs = %v, want [3]", ids)
	}
}

func TestGeneratedKeyMustUnwrap(t *testing.T) {
	// Generate works but Decrypt of the new blob fails: nothing is
	// written, nothing is published.
	e := newEnv(t, "", nil)
	e.fake.set(func(f *fakeKMS) { f.decErr = &mock.Error{Code: "AccessDeniedException", Message: "no kms:Decrypt"} })
	if v := e.m.LatestKeyVersion(8); v != keys.VersionInvalid {
		t.Fatalf("LatestKeyVersion = %d", v)
	}
	e.fake.wantCalls(t, 1, 1)
	e.log.want(t, "Error", "AWS KMS plugin : KMS Client API 'Decrypt' failed : AccessDeniedException - no kms:Decrypt")
	des, _ := os.ReadDir(e.dir)
	if len(des) != 0 {
		t.Errorf("key directory has %d entries, want none", len(des))
	}
	if ids := e.m.KeyIDs(); len(ids) != 0 {
		t.Errorf("KeyIDs = %v", ids)
	}
}

func TestFirstVersionMadeByAnotherServer(t *testing.T) {
	e := newEnv(t, "", nil)
	// Version 1 appears after Open scanned the directory.
	want := writeKeyFile(t, e.dir, 4, 1, 16)
	before, err := os.ReadFile(filepath.Join(e.dir, "aws-kms-key.4.1"))
	if err != nil {
		t.Fatal(err)
	}
	e.wantLatest(t, 4, 1)
	// Adopted as is: no generation, one unwrap.
	e.fake.wantCalls(t, 0, 1)
	if got := e.key(t, 4, 1); !bytes.Equal(got, want) {
		t.Errorf("key = %x, want the other server's %x", got, want)
	}
	after, _ := os.ReadFile(filepath.Join(e.dir, "aws-kms-key.4.1"))
	if !bytes.Equal(before, after) {
		t.Errorf("the existing key file was replaced")
	}
	e.wantLatest(t, 4, 1)
}

func TestLaterVersionsAdopted(t *testing.T) {
	e := newEnv(t, "", nil)
	e.setMaster("") // adopting needs no master key
	writeKeyFile(t, e.dir, 5, 1, 16)
	want := writeKeyFile(t, e.dir, 5, 3, 32)
	e.wantLatest(t, 5, 3)
	e.fake.wantCalls(t, 0, 1)
	if got := e.key(t, 5, 3); !bytes.Equal(got, want) {
		t.Errorf("key = %x, want %x", got, want)
	}
	e.log.wantNone(t, "ClientError", "Error", "Warning")
}

func TestFirstVersionRace(t *testing.T) {
	// Another server creates version 1 while this one is generating it:
	// the other's file wins and is used.
	e := newEnv(t, "", nil)
	var want []byte
	e.fake.set(func(f *fakeKMS) {
		f.genFail = func(int) error {
			want = writeKeyFile(t, e.dir, 4, 1, 16)
			return nil
		}
	})
	e.wantLatest(t, 4, 1)
	e.fake.wantCalls(t, 1, 2) // our generation and its check, then the other's unwrap
	if got := e.key(t, 4, 1); !bytes.Equal(got, want) {
		t.Errorf("key = %x, want the other server's %x", got, want)
	}
	if got := e.fileKey(t, 4, 1); !bytes.Equal(got, want) {
		t.Errorf("the other server's file was replaced")
	}
	e.log.wantSub(t, "Error", "AWS KMS plugin: Can't create key file: ")
	e.wantLatest(t, 4, 1)
	e.fake.wantCalls(t, 1, 2)
}

func TestBadKeyLength(t *testing.T) {
	tests := []struct {
		n  int
		ok bool
	}{
		{0, false},
		{15, false},
		{20, false},
		{24, false}, // an AES key, but no key_spec makes it
		{33, false},
		{64, false},
		{16, true},
	}
	// What is logged: the file, or what was asked for; a key too large
	// for a key slot is refused by the KMS backend itself.
	stored := func(n int) string {
		switch {
		case n == 0:
			return "AWS KMS plugin: KMS Decrypt returned a key of 0 bytes (aws-kms-key.1.1)"
		case n > keys.MaxKeyLength:
			return fmt.Sprintf("AWS KMS plugin : KMS Client API 'Decrypt' failed : RequestError - a key of %d bytes does not fit (aws-kms-key.1.1)", n)
		}
		return fmt.Sprintf("AWS KMS plugin: aws-kms-key.1.1: decrypted key has %d bytes; keys of this plugin have 16 (AES_128) or 32 (AES_256)", n)
	}
	generated := func(n int) string {
		switch {
		case n == 0:
			return "AWS KMS plugin: KMS Decrypt returned a key of 0 bytes"
		case n > keys.MaxKeyLength:
			return fmt.Sprintf("AWS KMS plugin : KMS Client API 'Decrypt' failed : RequestError - a key of %d bytes does not fit", n)
		}
		return fmt.Sprintf("AWS KMS plugin: new data key for key id=9 has %d bytes; key_spec AES_128 wants 16", n)
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("stored/%d", tc.n), func(t *testing.T) {
			dir := t.TempDir()
			writeKeyFile(t, dir, 1, 1, 16)
			fake := newFake()
			fake.keyLen = tc.n
			e := newEnv(t, dir, zeroLenKMS{fake, tc.n == 0})
			v := e.m.LatestKeyVersion(1)
			if !tc.ok {
				if v != keys.VersionInvalid {
					t.Fatalf("LatestKeyVersion = %d, want VersionInvalid", v)
				}
				e.log.want(t, "Error", stored(tc.n))
				e.log.want(t, "Warning", "AWS KMS plugin: key 1, version 1 could not be decrypted")
				if n, code := e.m.GetKey(1, 1, make([]byte, 64)); code != keys.VersionInvalid {
					t.Errorf("GetKey = %d, %d", n, code)
				}
				return
			}
			if v != 1 {
				t.Fatalf("LatestKeyVersion = %d, want 1", v)
			}
			if got := e.key(t, 1, 1); len(got) != tc.n {
				t.Errorf("key has %d bytes", len(got))
			}
		})
		t.Run(fmt.Sprintf("generated/%d", tc.n), func(t *testing.T) {
			fake := newFake()
			fake.keyLen = tc.n
			e := newEnv(t, "", zeroLenKMS{fake, tc.n == 0})
			v := e.m.LatestKeyVersion(9)
			if !tc.ok {
				if v != keys.VersionInvalid {
					t.Fatalf("LatestKeyVersion = %d, want VersionInvalid", v)
				}
				e.log.want(t, "Error", generated(tc.n))
				if e.exists(9, 1) {
					t.Errorf("key file written for a key of %d bytes", tc.n)
				}
				return
			}
			if v != 1 || !e.exists(9, 1) {
				t.Fatalf("LatestKeyVersion = %d, file exists %v", v, e.exists(9, 1))
			}
		})
	}
}

// zeroLenKMS makes Decrypt return an empty key when zero is set (the
// fake's keyLen cannot say "zero bytes").
type zeroLenKMS struct {
	*fakeKMS
	zero bool
}

func (z zeroLenKMS) Decrypt(ctx context.Context, blob, dst []byte) (int, error) {
	n, err := z.fakeKMS.Decrypt(ctx, blob, dst)
	if err == nil && z.zero {
		return 0, nil
	}
	return n, err
}

func TestRotate(t *testing.T) {
	e := newEnv(t, "", nil)
	e.wantLatest(t, 1, 1)
	e.wantLatest(t, 2, 1)
	e.log.reset()
	k1 := e.key(t, 1, 1)

	if got := e.m.Rotate(0); got != 0 {
		t.Errorf("Rotate(0) = %d", got)
	}
	if got := e.m.Rotate(-2); got != 0 {
		t.Errorf("Rotate(-2) = %d", got)
	}
	e.fake.wantCalls(t, 2, 2)
	if msgs := e.log.all(); len(msgs) != 0 {
		t.Errorf("Rotate(0) logged %v", msgs)
	}

	if got := e.m.Rotate(7); got != 1 {
		t.Errorf("Rotate(7) = %d, want 1", got)
	}
	e.log.want(t, "ClientWarning", "key 7 does not exist")
	e.fake.wantCalls(t, 2, 2)
	if e.exists(7, 1) {
		t.Errorf("Rotate of an unknown key created it")
	}

	if got := e.m.Rotate(1); got != 0 {
		t.Fatalf("Rotate(1) = %d, log: %v", got, e.log.all())
	}
	e.fake.wantCalls(t, 3, 3)
	e.log.want(t, "Note", "AWS KMS plugin: generated encrypted datakey for key id=1, version=2")
	if !e.exists(1, 2) {
		t.Fatal("aws-kms-key.1.2 not created")
	}
	e.wantLatest(t, 1, 2)
	e.wantLatest(t, 2, 1) // other keys untouched
	k2 := e.key(t, 1, 2)
	if bytes.Equal(k1, k2) {
		t.Errorf("rotation gave the same key")
	}
	if !bytes.Equal(e.key(t, 1, 1), k1) {
		t.Errorf("version 1 changed after rotation")
	}
	if !bytes.Equal(k2, e.fileKey(t, 1, 2)) {
		t.Errorf("new version differs from its file")
	}
	e.fake.wantCalls(t, 3, 3) // all served from the cache

	if got := e.m.Rotate(1); got != 0 {
		t.Fatalf("second Rotate(1) = %d", got)
	}
	e.wantLatest(t, 1, 3)
	if !bytes.Equal(e.key(t, 1, 1), k1) || !bytes.Equal(e.key(t, 1, 2), k2) {
		t.Errorf("old versions changed")
	}
	// The key spec is read at each generation.
	e.setSpec("AES_256")
	e.m.Rotate(1)
	if got := e.key(t, 1, 4); len(got) != 32 {
		t.Errorf("version 4 has %d bytes, want 32", len(got))
	}
	e.log.wantNone(t, "Warning", "Error", "ClientError")
}

func TestRotateWithoutMasterKey(t *testing.T) {
	e := newEnv(t, "", nil)
	e.wantLatest(t, 1, 1)
	e.setMaster("")
	const msg = "aws_key_management_master_key_id must be set to generate new data keys"
	for _, n := range []int{1, keys.RotateAll, 9} {
		e.log.reset()
		if got := e.m.Rotate(n); got != 1 {
			t.Errorf("Rotate(%d) = %d, want 1", n, got)
		}
		if got := e.log.of("ClientWarning"); !reflect.DeepEqual(got, []string{msg}) {
			t.Errorf("Rotate(%d) warnings %q, want [%q]", n, got, msg)
		}
	}
	e.fake.wantCalls(t, 1, 1)
	e.wantLatest(t, 1, 1)
}

func TestRotateAllGoesOnPastAFailure(t *testing.T) {
	e := newEnv(t, "", nil)
	for _, id := range []uint32{1, 2, 3} {
		e.wantLatest(t, id, 1)
	}
	e.log.reset()
	// Generate calls 1-3 made the keys; the rotation's 2nd fails (keys
	// rotate in parallel: which key that is is not fixed).
	e.fake.set(func(f *fakeKMS) {
		f.genFail = func(call int) error {
			if call == 5 {
				return &mock.Error{Code: "ThrottlingException", Message: "slow down"}
			}
			return nil
		}
	})
	if got := e.m.Rotate(keys.RotateAll); got != 1 {
		t.Fatalf("Rotate(RotateAll) = %d, want 1 failure; log: %v", got, e.log.all())
	}
	e.fake.wantCalls(t, 6, 5)
	var bad uint32
	for _, id := range []uint32{1, 2, 3} {
		switch v := e.m.LatestKeyVersion(id); {
		case v == 1 && bad == 0:
			bad = id
		case v != 2:
			t.Fatalf("LatestKeyVersion(%d) = %d; log: %v", id, v, e.log.all())
		}
	}
	if bad == 0 {
		t.Fatal("no key kept version 1")
	}
	if e.exists(bad, 2) {
		t.Errorf("aws-kms-key.%d.2 exists although its generation failed", bad)
	}
	e.log.want(t, "ClientWarning", fmt.Sprintf("Could not generate datakey for key id= %d, ver= 1", bad))
	e.log.want(t, "ClientWarning", "1 of 3 keys could not be rotated; they keep their current version")
	e.log.want(t, "Error", "AWS KMS plugin : KMS Client API 'GenerateDataKeyWithoutPlaintext' failed : ThrottlingException - slow down")
	if n := len(e.log.of("ClientWarning")); n != 2 {
		t.Errorf("%d client warnings, want 2: %v", n, e.log.of("ClientWarning"))
	}

	// Everything works again: all keys move on.
	if got := e.m.Rotate(keys.RotateAll); got != 0 {
		t.Fatalf("Rotate(RotateAll) = %d", got)
	}
	for _, id := range []uint32{1, 2, 3} {
		want := uint32(3)
		if id == bad {
			want = 2
		}
		e.wantLatest(t, id, want)
	}
}

// Many keys rotate in parallel: every key gets exactly its next version,
// the failures are counted and reported once per key, in key order (the
// warnings are given by the caller, whose thread is the statement's).
func TestRotateAllParallel(t *testing.T) {
	e := newEnv(t, "", nil)
	const n = 50
	for id := uint32(1); id <= n; id++ {
		e.wantLatest(t, id, 1)
	}
	e.log.reset()
	e.fake.set(func(f *fakeKMS) {
		f.genFail = func(call int) error {
			if call > n && (call-n)%7 == 0 { // 7 of the rotation's 50 calls
				return &mock.Error{Code: "KMSInternalException", Message: "busy"}
			}
			return nil
		}
	})
	if got := e.m.Rotate(keys.RotateAll); got != 7 {
		t.Fatalf("Rotate(RotateAll) = %d, want 7; log: %v", got, e.log.all())
	}
	var failed []uint32
	for id := uint32(1); id <= n; id++ {
		switch v := e.m.LatestKeyVersion(id); v {
		case 1:
			failed = append(failed, id)
		case 2:
			if !e.exists(id, 2) || e.exists(id, 3) {
				t.Errorf("key %d: files do not match version 2", id)
			}
		default:
			t.Errorf("key %d at version %d, want 1 or 2", id, v)
		}
	}
	var want []string
	for _, id := range failed {
		want = append(want, fmt.Sprintf("Could not generate datakey for key id= %d, ver= 1", id))
	}
	want = append(want, "7 of 50 keys could not be rotated; they keep their current version")
	if got := e.log.of("ClientWarning"); !reflect.DeepEqual(got, want) {
		t.Errorf("client warnings %q, want %q", got, want)
	}
}

func TestRotateAllNoKeys(t *testing.T) {
	e := newEnv(t, "", nil)
	if got := e.m.Rotate(keys.RotateAll); got != 0 {
		t.Errorf("Rotate(RotateAll) with no keys = %d", got)
	}
	e.fake.wantCalls(t, 0, 0)
	e.log.wantNone(t, "ClientWarning", "ClientError")
}

func TestRotateDoesNotReplaceExistingFile(t *testing.T) {
	e := newEnv(t, "", nil)
	e.wantLatest(t, 1, 1)
	k1 := e.key(t, 1, 1)
	path := filepath.Join(e.dir, "aws-kms-key.1.2")
	if err := os.WriteFile(path, []byte("made behind the manager's back"), 0o400); err != nil {
		t.Fatal(err)
	}
	if got := e.m.Rotate(1); got != 1 {
		t.Errorf("Rotate(1) = %d, want 1", got)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != "made behind the manager's back" {
		t.Errorf("existing file changed: %q, %v", data, err)
	}
	e.log.wantSub(t, "ClientWarning", "aws-kms-key.1.2 already exists and is not replaced")
	e.log.want(t, "ClientWarning", "Could not generate datakey for key id= 1, ver= 1")
	e.wantLatest(t, 1, 1)
	if !bytes.Equal(e.key(t, 1, 1), k1) {
		t.Errorf("version 1 changed")
	}
	des, _ := os.ReadDir(e.dir)
	if len(des) != 2 {
		t.Errorf("directory has %d entries, want 2 (no temporary file left)", len(des))
	}
}

func TestClose(t *testing.T) {
	e := newEnv(t, "", nil)
	e.wantLatest(t, 1, 1)
	e.m.Rotate(1)
	e.wantLatest(t, 2, 1)
	k11, k12 := e.key(t, 1, 1), e.key(t, 1, 2)
	e.fake.wantCalls(t, 3, 3)
	blobs := map[string][]byte{}
	for _, n := range []string{"aws-kms-key.1.1", "aws-kms-key.1.2", "aws-kms-key.2.1"} {
		blobs[n], _ = os.ReadFile(filepath.Join(e.dir, n))
	}

	old := e.m
	e.m.Close(waitLimit)
	if ids := old.KeyIDs(); len(ids) != 0 {
		t.Errorf("KeyIDs after Close = %v", ids)
	}
	// Closed is final: every entry point fails at once, with no KMS call
	// and no file written.
	if v := old.LatestKeyVersion(1); v != keys.VersionInvalid {
		t.Errorf("LatestKeyVersion after Close = %d", v)
	}
	if v := old.LatestKeyVersion(3); v != keys.VersionInvalid {
		t.Errorf("LatestKeyVersion of a new key id after Close = %d", v)
	}
	if n, code := old.GetKey(1, 1, make([]byte, 32)); code != keys.VersionInvalid {
		t.Errorf("GetKey after Close = %d, %d", n, code)
	}
	if f := old.Rotate(keys.RotateAll); f == 0 {
		t.Errorf("Rotate after Close reported success")
	}
	e.fake.wantCalls(t, 3, 3)
	if e.exists(3, 1) || e.exists(1, 3) {
		t.Errorf("a key file was written after Close")
	}
	old.Close(waitLimit) // twice is harmless

	// The next plugin lifetime unwraps them again, to the same keys.
	e.reopen(t)
	if ids := e.m.KeyIDs(); !reflect.DeepEqual(ids, []uint32{1, 2}) {
		t.Errorf("KeyIDs after reopening = %v", ids)
	}
	e.fake.wantCalls(t, 3, 3)
	e.wantLatest(t, 1, 2)
	e.fake.wantCalls(t, 3, 4)
	if !bytes.Equal(e.key(t, 1, 2), k12) || !bytes.Equal(e.key(t, 1, 1), k11) {
		t.Errorf("keys differ after Close and Open")
	}
	e.fake.wantCalls(t, 3, 5)
	for n, b := range blobs {
		got, err := os.ReadFile(filepath.Join(e.dir, n))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s changed after Close (%v)", n, err)
		}
	}
}

func TestKeyIDsSorted(t *testing.T) {
	e := newEnv(t, "", nil)
	for _, id := range []uint32{10, 2, 100000, 7} {
		e.wantLatest(t, id, 1)
	}
	if ids := e.m.KeyIDs(); !reflect.DeepEqual(ids, []uint32{2, 7, 10, 100000}) {
		t.Errorf("KeyIDs = %v", ids)
	}
}

func TestConcurrentUse(t *testing.T) {
	// Mixed use under the race detector: every version always yields the
	// same bytes, and no caller sees an error.
	e := newEnv(t, "", mock.New())
	for id := uint32(1); id <= 4; id++ {
		e.wantLatest(t, id, 1)
	}
	var (
		wg   sync.WaitGroup
		seen sync.Map // "id.ver" -> []byte
		bad  atomic.Int32
	)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, keys.MaxKeyLength)
			for i := 0; i < 30; i++ {
				id := uint32(1 + (g+i)%4)
				if g == 0 && i%10 == 5 {
					if e.m.Rotate(int(id)) != 0 {
						bad.Add(1)
					}
					continue
				}
				v := e.m.LatestKeyVersion(id)
				if v == keys.VersionInvalid {
					bad.Add(1)
					continue
				}
				n, code := e.m.GetKey(id, v, buf)
				if code != 0 {
					bad.Add(1)
					continue
				}
				k := string(buf[:n])
				if prev, loaded := seen.LoadOrStore(fmt.Sprintf("%d.%d", id, v), k); loaded && prev.(string) != k {
					bad.Add(1)
				}
			}
		}()
	}
	within(t, "concurrent callers", wg.Wait)
	if n := bad.Load(); n != 0 {
		t.Errorf("%d failed or inconsistent calls; log: %v", n, e.log.all())
	}
	k := e.kms.(*mock.KMS)
	// One generation per key id plus the three rotations.
	if n := k.Calls(mock.OpGenerate); n != 4+3 {
		t.Errorf("Generate calls = %d, want 7", n)
	}
}

// A GetKey running while Close wipes the keys must return either the whole
// key or VersionInvalid, never a zeroed or half-zeroed key (run with -race:
// the copy and the wipe were a data race). Close starts only once the
// reader is running, and the reader goes on until it sees Close's effect
// (VersionInvalid), so every round has calls on both sides of Close.
func TestGetKeyDuringClose(t *testing.T) {
	const (
		maxCalls = 10_000_000
		maxTime  = 10 * time.Second
	)
	for round := 0; round < 20; round++ {
		e := newEnv(t, "", nil)
		if v := e.m.LatestKeyVersion(1); v != 1 {
			t.Fatalf("LatestKeyVersion(1) = %d", v)
		}
		want := e.key(t, 1, 1)
		running := make(chan struct{})
		done := make(chan struct{})
		var ok, invalid, bad, other, calls int
		go func() {
			defer close(done)
			buf := make([]byte, keys.MaxKeyLength)
			deadline := time.Now().Add(maxTime)
			for calls < maxCalls && invalid == 0 && time.Now().Before(deadline) {
				n, code := e.m.GetKey(1, 1, buf)
				calls++
				switch {
				case code == 0 && bytes.Equal(buf[:n], want):
					ok++
					if ok == 1 {
						close(running)
					}
				case code == 0:
					bad++
				case code == keys.VersionInvalid && n == 0:
					invalid++
				default:
					other++
				}
			}
		}()
		select {
		case <-running:
		case <-done:
		case <-time.After(maxTime):
			t.Fatalf("round %d: GetKey did not succeed within %v", round, maxTime)
		}
		e.m.Close(waitLimit)
		<-done
		switch {
		case bad != 0:
			t.Fatalf("round %d: %d of %d GetKey calls returned a wiped key with code 0", round, bad, calls)
		case other != 0:
			t.Fatalf("round %d: %d of %d GetKey calls returned neither the key nor VersionInvalid", round, other, calls)
		case ok == 0:
			t.Fatalf("round %d: no GetKey call succeeded before Close (%d calls)", round, calls)
		case invalid == 0:
			t.Fatalf("round %d: no GetKey call saw VersionInvalid after Close (%d calls, %d succeeded)", round, calls, ok)
		}
	}
}

// Key id 0 is not a key: nothing is generated and no file is written.
func TestKeyIDZero(t *testing.T) {
	e := newEnv(t, "", nil)
	if v := e.m.LatestKeyVersion(0); v != keys.VersionInvalid {
		t.Fatalf("LatestKeyVersion(0) = %d, want VersionInvalid", v)
	}
	e.fake.wantCalls(t, 0, 0)
	if err := e.store.Create(0, 1, []byte("x")); err == nil {
		t.Fatal("Store.Create accepted key id 0")
	}
}

// The latest file is damaged (garbage): new data goes to the highest
// older version that unwraps, with one warning, instead of "invalid"
// (which InnoDB would keep for the tablespace until a restart).
func TestLatestFallsBackPastDamagedFile(t *testing.T) {
	dir := t.TempDir()
	k1 := writeKeyFile(t, dir, 7, 1, 16)
	if err := os.WriteFile(filepath.Join(dir, "aws-kms-key.7.2"), []byte("garbage, not a KMS blob"), 0o400); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, dir, nil)
	if v := e.m.LatestKeyVersion(7); v != 1 {
		t.Fatalf("LatestKeyVersion(7) = %d, want 1 (version 2 is damaged)", v)
	}
	e.log.wantSub(t, "Warning", "key 7, version 2 cannot be used now; new data is encrypted with version 1")
	if got := e.key(t, 7, 1); !bytes.Equal(got, k1) {
		t.Fatal("version 1 has the wrong key")
	}
	// Repeated calls during the backoff do not log again.
	n := len(e.log.of("Warning"))
	e.m.LatestKeyVersion(7)
	if len(e.log.of("Warning")) != n {
		t.Fatal("a call during the backoff logged again")
	}
}

// KMS fails: the latest version cannot be unwrapped, an older loaded one
// serves without any KMS call; once KMS is back (after the backoff) the
// latest version is used again.
func TestLatestFallsBackDuringOutage(t *testing.T) {
	dir := t.TempDir()
	writeKeyFile(t, dir, 7, 1, 16)
	writeKeyFile(t, dir, 7, 2, 16)
	e := newEnv(t, dir, nil)
	e.key(t, 7, 1) // version 1 loaded, version 2 not
	e.fake.set(func(f *fakeKMS) { f.decErr = &mock.Error{Code: "KMSInternalException", Message: "down"} })
	_, before := e.fake.calls()
	if v := e.m.LatestKeyVersion(7); v != 1 {
		t.Fatalf("during the outage LatestKeyVersion = %d, want the loaded version 1", v)
	}
	// Version 2 is tried once, in the background; the failure is logged
	// with the version in use.
	eventually(t, "the background unwrap of version 2", func() bool {
		return len(e.log.of("Warning")) >= 2
	})
	if _, after := e.fake.calls(); after != before+1 {
		t.Fatalf("%d Decrypt calls, want 1 (version 2 only)", after-before)
	}
	e.log.want(t, "Warning", "AWS KMS plugin: key 7, version 2 could not be decrypted")
	e.log.want(t, "Warning", "AWS KMS plugin: key 7, version 2 cannot be used now; new data is encrypted with version 1 until it can")
	// Within the backoff: version 1 at once, no KMS call.
	if v := e.m.LatestKeyVersion(7); v != 1 {
		t.Fatalf("in the backoff LatestKeyVersion = %d, want 1", v)
	}
	e.fake.wantCalls(t, 0, before+1)
	// Nothing loaded below: invalid, and no KMS call for older versions.
	dir2 := t.TempDir()
	writeKeyFile(t, dir2, 8, 1, 16)
	writeKeyFile(t, dir2, 8, 2, 16)
	e2 := newEnv(t, dir2, nil)
	e2.fake.set(func(f *fakeKMS) { f.decErr = &mock.Error{Code: "KMSInternalException", Message: "down"} })
	if v := e2.m.LatestKeyVersion(8); v != keys.VersionInvalid {
		t.Fatalf("nothing loaded: LatestKeyVersion = %d, want VersionInvalid", v)
	}
	e2.fake.wantCalls(t, 0, 1)

	e.fake.set(func(f *fakeKMS) { f.decErr = nil })
	e.clock.Advance(retryMax)
	if v := e.m.LatestKeyVersion(7); v != 1 {
		t.Fatalf("KMS is back, version 2 unwrapping: LatestKeyVersion = %d, want 1 meanwhile", v)
	}
	eventually(t, "version 2 once KMS is back", func() bool { return e.m.LatestKeyVersion(7) == 2 })
}

// aws_key_management_fallback_to_older_version=OFF: while the latest
// version cannot be unwrapped, LatestKeyVersion answers VersionInvalid
// instead of an older version, whether the older one is loaded already
// (KMS down) or would unwrap (the latest file damaged); switched back ON
// (it is dynamic), the older version serves again.
func TestLatestNoFallbackWhenSwitchedOff(t *testing.T) {
	var allow atomic.Bool
	withFallback := func(c *keys.Config) { c.Fallback = allow.Load }

	dir := t.TempDir()
	writeKeyFile(t, dir, 7, 1, 16)
	writeKeyFile(t, dir, 7, 2, 16)
	e := newEnv(t, dir, nil, withFallback)
	e.key(t, 7, 1) // version 1 loaded, version 2 not
	e.fake.set(func(f *fakeKMS) { f.decErr = &mock.Error{Code: "KMSInternalException", Message: "down"} })
	_, before := e.fake.calls()
	if v := e.m.LatestKeyVersion(7); v != keys.VersionInvalid {
		t.Fatalf("fallback off, KMS down: LatestKeyVersion = %d, want VersionInvalid", v)
	}
	if _, after := e.fake.calls(); after != before+1 {
		t.Fatalf("%d Decrypt calls, want 1 (version 2, tried at once)", after-before)
	}
	if w := e.log.of("Warning"); len(w) > 0 && strings.Contains(strings.Join(w, "\n"), "cannot be used now") {
		t.Fatalf("fallback off, yet a fallback was logged: %q", w)
	}
	allow.Store(true)
	if v := e.m.LatestKeyVersion(7); v != 1 {
		t.Fatalf("fallback back on: LatestKeyVersion = %d, want the loaded version 1", v)
	}

	dir2 := t.TempDir()
	writeKeyFile(t, dir2, 8, 1, 16)
	if err := os.WriteFile(filepath.Join(dir2, "aws-kms-key.8.2"), []byte("garbage, not a KMS blob"), 0o400); err != nil {
		t.Fatal(err)
	}
	allow.Store(false)
	e2 := newEnv(t, dir2, nil, withFallback)
	if v := e2.m.LatestKeyVersion(8); v != keys.VersionInvalid {
		t.Fatalf("fallback off, version 2 damaged: LatestKeyVersion = %d, want VersionInvalid", v)
	}
	e2.fake.wantCalls(t, 0, 1) // version 2 only: version 1 is not tried
	allow.Store(true)
	e2.clock.Advance(retryMax)
	if v := e2.m.LatestKeyVersion(8); v != 1 {
		t.Fatalf("fallback on, version 2 damaged: LatestKeyVersion = %d, want 1", v)
	}
}

// A KMS refusal during rotation tells the client what it means: the
// advice is given from the statement's goroutine (rotation generates on
// workers, whose client messages would be lost).
func TestRotateRefusalAdviceReachesClient(t *testing.T) {
	e := newEnv(t, "", nil)
	for _, id := range []uint32{3, 4} {
		if v := e.m.LatestKeyVersion(id); v != 1 {
			t.Fatalf("LatestKeyVersion(%d) = %d, want 1", id, v)
		}
	}
	e.log.reset()
	e.fake.set(func(f *fakeKMS) { f.genErr = &mock.Error{Code: "DisabledException", Message: "key is disabled"} })
	if got := e.m.Rotate(keys.RotateAll); got != 2 {
		t.Fatalf("Rotate(RotateAll) = %d, want 2 failures; log: %v", got, e.log.all())
	}
	for _, id := range []uint32{3, 4} {
		e.log.want(t, "ClientWarning", fmt.Sprintf("AWS KMS refused a new data key for key id=%d: %s", id, disabledAdvice))
		e.log.want(t, "ClientWarning", fmt.Sprintf("Could not generate datakey for key id= %d, ver= 1", id))
	}
	e.log.wantNone(t, "LostClientWarning", "LostClientError")
}
