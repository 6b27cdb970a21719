package keys_test

import (
	"bytes"
	"context"
	"strconv"
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

// latencyKMS answers Decrypt after a fixed latency (seconds, in these
// tests), counts calls and calls in flight, and, with deaf set, ignores
// cancellation, as a call stuck in the kernel would.
type latencyKMS struct {
	latency time.Duration
	deaf    bool
	// linger: how long a cancelled Decrypt takes to return (a request
	// being torn down), so that not waiting for it shows.
	linger   time.Duration
	calls    atomic.Int32
	inFlight atomic.Int32
	started  chan struct{} // one value per Decrypt that starts, if set
}

func (l *latencyKMS) GenerateDataKeyWithoutPlaintext(context.Context, string, string) ([]byte, error) {
	return nil, kmserr.New("GenerateDataKeyWithoutPlaintext", &mock.Error{Code: "AccessDeniedException", Message: "not in this test"})
}

func (l *latencyKMS) Decrypt(ctx context.Context, blob, dst []byte) (int, error) {
	l.calls.Add(1)
	l.inFlight.Add(1)
	defer l.inFlight.Add(-1)
	if l.started != nil {
		l.started <- struct{}{}
	}
	t := time.NewTimer(l.latency)
	defer t.Stop()
	if l.deaf {
		<-t.C
	} else {
		select {
		case <-t.C:
		case <-ctx.Done():
			time.Sleep(l.linger)
			return 0, kmserr.New("Decrypt", ctx.Err())
		}
	}
	n, err := mock.OpenInto(blob, dst)
	if err != nil {
		return 0, kmserr.New("Decrypt", err)
	}
	return n, nil
}

func latencyManager(t *testing.T, kms keys.KMS, dir string, cache keys.Cache) (*keys.Manager, *fakeLog) {
	t.Helper()
	log := &fakeLog{}
	m := keys.New(keys.Config{
		MasterKeyID: func() string { return "alias/test" },
		KeySpec:     func() string { return "AES_128" },
		KMS:         kms,
		Store:       keyfile.New(dir),
		Log:         log,
		Timeout:     waitLimit,
		Cache:       cache,
	})
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	return m, log
}

// The latest version of a key is not loaded but an older one is (its
// unwrap failed at start), and KMS now takes 3 s per call: every lookup is
// answered at once with the loaded version while one background unwrap of
// the latest is in flight; answers switch to the latest when it is loaded.
// (Before, each lookup after a backoff held the version's lock for the
// whole KMS call, and every page write on that key waited for it.)
func TestLookupNeverWaitsForASlowKMS(t *testing.T) {
	dir := t.TempDir()
	writeKeyFile(t, dir, 7, 1, 16)
	want2 := writeKeyFile(t, dir, 7, 2, 16)
	kms := &latencyKMS{latency: 3 * time.Second, started: make(chan struct{}, 16)}
	m, log := latencyManager(t, kms, dir, nil)
	kms.latency = 0
	if _, code := m.GetKey(7, 1, make([]byte, 32)); code != 0 {
		t.Fatal("version 1 could not be loaded")
	}
	<-kms.started
	kms.latency = 3 * time.Second

	const lookups = 10000
	var wg sync.WaitGroup
	var wrong atomic.Int32
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < lookups/4; i++ {
				if m.LatestKeyVersion(7) != 1 {
					wrong.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	<-kms.started // the background unwrap of version 2 started...
	if kms.inFlight.Load() != 1 {
		t.Fatalf("%d lookups returned, but the one Decrypt of version 2 is not in flight any more: they waited for it", lookups)
	}
	if n := wrong.Load(); n != 0 {
		t.Fatalf("%d of %d lookups did not answer the loaded version 1", n, lookups)
	}
	if c := kms.calls.Load(); c != 2 {
		t.Fatalf("%d Decrypt calls, want 2 (version 1, then one for version 2)", c)
	}
	// ...and when it ends, the latest version is served.
	eventually(t, "version 2 after the slow unwrap", func() bool { return m.LatestKeyVersion(7) == 2 })
	buf := make([]byte, 32)
	if n, code := m.GetKey(7, 2, buf); code != 0 || !bytes.Equal(buf[:n], want2) {
		t.Fatalf("GetKey(7, 2) = %d, %d", n, code)
	}
	log.want(t, "Note", "AWS KMS plugin: loaded key 7, version 2, key length 128 bit")
	log.wantNone(t, "Warning", "Error")
	m.Close(waitLimit)
}

// With nothing of the key loaded there is no other answer: the lookup
// waits for the unwrap (once, for all callers).
func TestLookupWaitsWhenNothingIsLoaded(t *testing.T) {
	dir := t.TempDir()
	writeKeyFile(t, dir, 7, 1, 16)
	kms := &latencyKMS{latency: 200 * time.Millisecond}
	m, _ := latencyManager(t, kms, dir, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v := m.LatestKeyVersion(7); v != 1 {
				t.Errorf("LatestKeyVersion = %d, want 1", v)
			}
		}()
	}
	wg.Wait()
	if c := kms.calls.Load(); c != 1 {
		t.Fatalf("%d Decrypt calls, want 1", c)
	}
	m.Close(waitLimit)
}

// Close cancels the KMS calls in flight and waits for them: the call
// that was unwrapping ends with nothing published, and the Manager
// answers nothing afterwards.
func TestCloseCancelsAndWaitsForCallsInFlight(t *testing.T) {
	dir := t.TempDir()
	writeKeyFile(t, dir, 3, 1, 16)
	kms := &latencyKMS{latency: time.Minute, linger: 100 * time.Millisecond, started: make(chan struct{}, 1)}
	cache := &recCache{}
	m, log := latencyManager(t, kms, dir, cache)
	got := make(chan uint32, 1)
	go func() {
		_, code := m.GetKey(3, 1, make([]byte, 32))
		got <- code
	}()
	<-kms.started
	start := time.Now()
	m.Close(waitLimit)
	if took := time.Since(start); took > waitLimit/2 {
		t.Fatalf("Close took %v", took)
	}
	// Close waits for the call's KMS request, not for the goroutine
	// that made it to hand on its result: that comes right after.
	if n := kms.inFlight.Load(); n != 0 {
		t.Fatalf("Close returned with %d KMS calls still in flight", n)
	}
	select {
	case code := <-got:
		if code != keys.VersionInvalid {
			t.Fatalf("GetKey in flight during Close = %d, want VersionInvalid", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the GetKey in flight during Close did not return")
	}
	if c := cache.log(); c != "reset" {
		t.Fatalf("cache events %q, want only the reset", c)
	}
	log.wantNone(t, "Error", "Warning")
}

// A call that does not end when cancelled (deaf): Close waits only as
// long as it is told, says so, and the late result is wiped and dropped:
// nothing reaches the cache after its reset, and nothing is served.
func TestCloseDropsLateResults(t *testing.T) {
	dir := t.TempDir()
	writeKeyFile(t, dir, 3, 1, 16)
	kms := &latencyKMS{latency: 500 * time.Millisecond, deaf: true, started: make(chan struct{}, 1)}
	cache := &recCache{}
	m, log := latencyManager(t, kms, dir, cache)
	done := make(chan uint32, 1)
	go func() {
		_, code := m.GetKey(3, 1, make([]byte, 32))
		done <- code
	}()
	<-kms.started
	m.Close(50 * time.Millisecond)
	log.wantSub(t, "Warning", "AWS KMS plugin: stopped with key calls still in flight after 50ms; what they return is wiped and dropped")
	select {
	case code := <-done:
		if code != keys.VersionInvalid {
			t.Fatalf("the late call returned %d", code)
		}
	case <-time.After(waitLimit):
		t.Fatal("the late call did not end")
	}
	if c := cache.log(); c != "reset" {
		t.Fatalf("cache events %q: a late result was published after the reset", c)
	}
	if _, code := m.GetKey(3, 1, make([]byte, 32)); code != keys.VersionInvalid {
		t.Fatalf("GetKey after Close = %d", code)
	}
	if strings.Contains(strings.Join(log.of("Note"), "\n"), "loaded key 3") {
		t.Fatalf("the late key was loaded: %v", log.of("Note"))
	}
}

// A new key must have exactly the length its key_spec asks for.
func TestNewKeyHasTheSpecLength(t *testing.T) {
	for _, tc := range []struct {
		spec string
		n    int
		ok   bool
	}{{"AES_128", 32, false}, {"AES_256", 16, false}, {"AES_256", 24, false}, {"AES_256", 32, true}, {"AES_128", 16, true}} {
		fake := newFake()
		fake.keyLen = tc.n
		e := newEnv(t, "", fake)
		e.setSpec(tc.spec)
		v := e.m.LatestKeyVersion(4)
		if tc.ok != (v == 1) || tc.ok != e.exists(4, 1) {
			t.Errorf("%s, %d bytes from KMS: LatestKeyVersion = %d, file %v", tc.spec, tc.n, v, e.exists(4, 1))
		}
		if !tc.ok {
			e.log.wantSub(t, "Error", "has "+strconv.Itoa(tc.n)+" bytes; key_spec "+tc.spec+" wants")
		}
	}
}
