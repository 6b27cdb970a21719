package keys_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
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

// slowKMS is a Decrypt-only KMS that takes `delay` per call, counts how
// many calls run at once, and fails the first `throttle` calls with
// ThrottlingException.
type slowKMS struct {
	delay    time.Duration
	throttle int32
	down     int32 // the first `down` calls (after throttling) fail with KMSInternalException

	calls, inFlight, peak atomic.Int32
}

func (s *slowKMS) GenerateDataKeyWithoutPlaintext(context.Context, string, string) ([]byte, error) {
	return nil, kmserr.New("GenerateDataKeyWithoutPlaintext", &mock.Error{Code: "AccessDeniedException", Message: "not in this test"})
}

func (s *slowKMS) Decrypt(ctx context.Context, blob, dst []byte) (int, error) {
	n, err := s.decrypt(ctx, blob, dst)
	if err != nil {
		return 0, kmserr.New("Decrypt", err)
	}
	return n, nil
}

func (s *slowKMS) decrypt(ctx context.Context, blob, dst []byte) (int, error) {
	n := s.calls.Add(1)
	cur := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		p := s.peak.Load()
		if cur <= p || s.peak.CompareAndSwap(p, cur) {
			break
		}
	}
	if n <= s.throttle {
		return 0, &mock.Error{Code: "ThrottlingException", Message: "Rate exceeded"}
	}
	if n <= s.throttle+s.down {
		return 0, &mock.Error{Code: "KMSInternalException", Message: "KMS is down"}
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return mock.OpenInto(blob, dst)
}

func preloadEnv(t *testing.T, kms keys.KMS, nkeys, versions int) (*keys.Manager, *fakeLog, string) {
	t.Helper()
	dir := t.TempDir()
	for id := 1; id <= nkeys; id++ {
		for v := 1; v <= versions; v++ {
			writeKeyFile(t, dir, uint32(id), uint32(v), 16)
		}
	}
	log := &fakeLog{}
	m := keys.New(keys.Config{
		MasterKeyID: func() string { return "alias/test" },
		KeySpec:     func() string { return "AES_128" },
		KMS:         kms,
		Store:       keyfile.New(dir),
		Log:         log,
		Timeout:     waitLimit,
	})
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	return m, log, dir
}

// Every version is unwrapped, with at most Parallel calls in flight, and
// then served without another KMS call.
func TestPreloadAllVersionsBounded(t *testing.T) {
	kms := &slowKMS{delay: 20 * time.Millisecond}
	m, log, _ := preloadEnv(t, kms, 40, 2)
	var res keys.PreloadResult
	within(t, "Preload", func() {
		res = m.Preload(context.Background(), keys.PreloadConfig{Parallel: 8})
	})
	if res.Versions != 80 || res.Loaded != 80 || res.Failed != 0 {
		t.Fatalf("Preload = %+v, want 80 loaded", res)
	}
	if p := kms.peak.Load(); p < 2 || p > 8 {
		t.Fatalf("peak concurrent Decrypt calls %d, want 2..8", p)
	}
	before := kms.calls.Load()
	for id := uint32(1); id <= 40; id++ {
		if v := m.LatestKeyVersion(id); v != 2 {
			t.Fatalf("LatestKeyVersion(%d) = %d", id, v)
		}
		buf := make([]byte, 32)
		if _, code := m.GetKey(id, 1, buf); code != 0 {
			t.Fatalf("GetKey(%d, 1) = %d", id, code)
		}
	}
	if kms.calls.Load() != before {
		t.Fatalf("serving preloaded keys called KMS %d more times", kms.calls.Load()-before)
	}
	if n := len(log.of("Note")); n != 80 {
		t.Fatalf("%d notes, want 80 'loaded key' lines", n)
	}
}

// Throttling pauses the workers and the throttled versions are tried
// again: all keys load.
func TestPreloadThrottling(t *testing.T) {
	kms := &slowKMS{delay: time.Millisecond, throttle: 10}
	m, _, _ := preloadEnv(t, kms, 20, 1)
	var res keys.PreloadResult
	within(t, "Preload", func() {
		res = m.Preload(context.Background(), keys.PreloadConfig{Parallel: 4, Backoff: 5 * time.Millisecond, Attempts: 6})
	})
	if res.Loaded != 20 || res.Failed != 0 {
		t.Fatalf("Preload = %+v, want all 20 loaded after throttling", res)
	}
	if c := kms.calls.Load(); c != 30 {
		t.Fatalf("%d Decrypt calls, want 30 (20 + 10 throttled)", c)
	}
}

// A damaged file fails once (not retried: it will not get better), the
// others load, and the server-facing calls still work for them.
func TestPreloadBadFileAndCancel(t *testing.T) {
	kms := &slowKMS{delay: time.Millisecond}
	m, log, dir := preloadEnv(t, kms, 5, 1)
	if err := os.Remove(filepath.Join(dir, "aws-kms-key.3.1")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "aws-kms-key.3.1"), nil, 0o400); err != nil {
		t.Fatal(err)
	}
	res := m.Preload(context.Background(), keys.PreloadConfig{Parallel: 2})
	if res.Loaded != 4 || res.Failed != 1 {
		t.Fatalf("Preload = %+v, want 4 loaded, 1 failed", res)
	}
	if c := kms.calls.Load(); c != 4 {
		t.Fatalf("%d Decrypt calls, want 4 (the empty file never reaches KMS)", c)
	}
	log.wantSub(t, "Warning", "aws-kms-key.3.1: key file is empty")

	// A context that is already over: nothing is done, nothing breaks,
	// and the first use unwraps lazily.
	m2, _, _ := preloadEnv(t, kms, 3, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = m2.Preload(ctx, keys.PreloadConfig{})
	if res.Loaded != 0 || res.Failed != 3 {
		t.Fatalf("cancelled Preload = %+v, want 0 loaded, 3 not done", res)
	}
	if v := m2.LatestKeyVersion(2); v != 1 {
		t.Fatalf("lazy unwrap after a cancelled Preload: %d", v)
	}
}

// Preload and the server's own requests for the same versions make one
// KMS call per version between them.
func TestPreloadRacesWithRequests(t *testing.T) {
	kms := &slowKMS{delay: 5 * time.Millisecond}
	m, _, _ := preloadEnv(t, kms, 10, 1)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := uint32(1); id <= 10; id++ {
				if v := m.LatestKeyVersion(id); v != 1 {
					t.Errorf("LatestKeyVersion(%d) = %d", id, v)
				}
			}
		}()
	}
	m.Preload(context.Background(), keys.PreloadConfig{Parallel: 4})
	wg.Wait()
	if c := kms.calls.Load(); c != 10 {
		t.Fatalf("%d Decrypt calls for 10 versions", c)
	}
}

// recCache records what the manager publishes for the C side.
type recCache struct {
	mu     sync.Mutex
	events []string
	keys   map[[2]uint32][]byte
}

func (c *recCache) Put(id, ver uint32, key []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = map[[2]uint32][]byte{}
	}
	c.keys[[2]uint32{id, ver}] = append([]byte(nil), key...)
	c.events = append(c.events, fmt.Sprintf("put %d.%d", id, ver))
}
func (c *recCache) SetLatest(id, ver uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, fmt.Sprintf("latest %d=%d", id, ver))
}
func (c *recCache) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys = nil
	c.events = append(c.events, "reset")
}
func (c *recCache) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.events, ", ")
}

// The C side learns a key when it is loaded and a latest version only
// once that version's key is loaded, the key always first; Close resets it.
func TestCachePublication(t *testing.T) {
	dir := t.TempDir()
	k1 := writeKeyFile(t, dir, 5, 1, 16)
	writeKeyFile(t, dir, 5, 2, 16)
	cache := &recCache{}
	m := keys.New(keys.Config{
		MasterKeyID: func() string { return "alias/test" },
		KeySpec:     func() string { return "AES_128" },
		KMS:         newFake(),
		Store:       keyfile.New(dir),
		Log:         &fakeLog{},
		Cache:       cache,
	})
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	if got := cache.log(); got != "" {
		t.Fatalf("published before anything was loaded: %s", got)
	}
	// An old version: its key, but "latest" stays unknown to the cache.
	buf := make([]byte, 32)
	if _, code := m.GetKey(5, 1, buf); code != 0 {
		t.Fatal(code)
	}
	if got := cache.log(); got != "put 5.1" {
		t.Fatalf("after GetKey(5, 1): %s", got)
	}
	if !bytes.Equal(cache.keys[[2]uint32{5, 1}], k1) {
		t.Fatal("cache got another key than the file's")
	}
	// The latest version (unwrapped in the background while version 1
	// serves), then a rotation and a new key id.
	if v := m.LatestKeyVersion(5); v != 1 {
		t.Fatalf("LatestKeyVersion(5) = %d, want the loaded version 1 while 2 is unwrapped", v)
	}
	eventually(t, "version 2 in the background", func() bool { return m.LatestKeyVersion(5) == 2 })
	if m.Rotate(5) != 0 {
		t.Fatal("rotation failed")
	}
	if v := m.LatestKeyVersion(9); v != 1 {
		t.Fatal(v)
	}
	m.Close(waitLimit)
	want := "put 5.1, put 5.2, latest 5=2, put 5.3, latest 5=3, put 9.1, latest 9=1, reset"
	if got := cache.log(); got != want {
		t.Fatalf("publication order:\n got  %s\n want %s", got, want)
	}
}

// KMS down at boot for a while (here 25 failed calls): Preload keeps
// trying, all workers pausing together, until KMS answers, so InnoDB
// does not open its tablespaces without their keys.
func TestPreloadRidesOutAnOutage(t *testing.T) {
	kms := &slowKMS{delay: time.Millisecond, down: 25}
	m, _, _ := preloadEnv(t, kms, 8, 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var res keys.PreloadResult
	within(t, "Preload", func() {
		res = m.Preload(ctx, keys.PreloadConfig{Parallel: 4, Backoff: time.Millisecond})
	})
	if res.Loaded != 8 || res.Failed != 0 {
		t.Fatalf("Preload = %+v, want all 8 loaded once KMS is back", res)
	}
	if c := kms.calls.Load(); c != 33 {
		t.Fatalf("%d Decrypt calls, want 33 (25 failed + 8)", c)
	}
}

// Stall ends a Preload that makes no progress (KMS down for good), but
// never one that keeps loading: 40 keys one at a time at 20 ms each run
// well past a Stall of 300 ms and all load; with KMS down, Preload gives
// up (leaving every version to first use) instead of running until ctx.
func TestPreloadStall(t *testing.T) {
	slow := &slowKMS{delay: 20 * time.Millisecond}
	m, _, _ := preloadEnv(t, slow, 40, 1)
	var res keys.PreloadResult
	within(t, "Preload", func() {
		res = m.Preload(context.Background(), keys.PreloadConfig{Parallel: 1, Stall: 300 * time.Millisecond})
	})
	if res.Loaded != 40 || res.Failed != 0 {
		t.Fatalf("slow but loading: %+v, want all 40 loaded", res)
	}

	down := &slowKMS{delay: time.Millisecond, down: 1 << 30}
	m, _, _ = preloadEnv(t, down, 3, 1)
	within(t, "Preload", func() {
		res = m.Preload(context.Background(), keys.PreloadConfig{Parallel: 2, Backoff: time.Millisecond, Stall: 300 * time.Millisecond})
	})
	if res.Loaded != 0 || res.Failed != 3 || down.calls.Load() < 2 {
		t.Fatalf("KMS down: %+v after %d calls, want 3 failed after retries", res, down.calls.Load())
	}
}

// A key file that cannot be read (a symlink loop here) is a file problem:
// Preload does not wait for it to get better.
func TestPreloadDoesNotRetryFileErrors(t *testing.T) {
	kms := &slowKMS{delay: time.Millisecond}
	m, _, dir := preloadEnv(t, kms, 3, 1)
	p := filepath.Join(dir, "aws-kms-key.2.1")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p, p); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	start := time.Now()
	res := m.Preload(ctx, keys.PreloadConfig{Parallel: 2})
	if res.Loaded != 2 || res.Failed != 1 {
		t.Fatalf("Preload = %+v, want 2 loaded, 1 failed", res)
	}
	if time.Since(start) > waitLimit/2 {
		t.Fatalf("Preload waited %v on a file error", time.Since(start))
	}
	if c := kms.calls.Load(); c != 2 {
		t.Fatalf("%d Decrypt calls, want 2", c)
	}
}

// Preload unwraps the versions that are on disk, not 1..latest: a gap
// (old versions pruned) or a huge version number costs nothing extra.
func TestPreloadVersionsOnDiskOnly(t *testing.T) {
	kms := &slowKMS{delay: time.Millisecond}
	m, log, dir := preloadEnv(t, kms, 0, 0)
	writeKeyFile(t, dir, 4, 1, 16)
	writeKeyFile(t, dir, 4, 1000, 16)
	writeKeyFile(t, dir, 5, keyfile.MaxVersion, 16)
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	var res keys.PreloadResult
	within(t, "Preload", func() {
		res = m.Preload(context.Background(), keys.PreloadConfig{Parallel: 2})
	})
	if res.Versions != 3 || res.Loaded != 3 || res.Failed != 0 {
		t.Fatalf("Preload = %+v, want the 3 versions on disk", res)
	}
	if c := kms.calls.Load(); c != 3 {
		t.Fatalf("%d Decrypt calls, want 3", c)
	}
	if w := log.of("Warning"); len(w) != 0 {
		t.Fatalf("warnings: %v", w)
	}
}
