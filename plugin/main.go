package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mariadb-go/aws_key_management/cabi"
	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/keys"
	"github.com/mariadb-go/aws_key_management/internal/memtrim"
	"github.com/mariadb-go/aws_key_management/internal/ratelimit"
	"github.com/mariadb-go/aws_key_management/internal/recovery"
)

func main() {}

// The key manager's return codes and key length are the server's: cabi's
// constants come from cabi.h, which plugin.c checks against
// plugin_encryption.h. A mismatch does not compile (a constant index out
// of range).
var (
	_ = [1]struct{}{}[keys.VersionInvalid-cabi.KeyVersionInvalid]
	_ = [1]struct{}{}[keys.BufferTooSmall-cabi.BufferTooSmall]
	_ = [1]struct{}{}[keys.MaxKeyLength-cabi.MaxKeyLength]
)

func init() { cabi.Register(&app{}) }

// app implements cabi.Plugin for one plugin lifetime.
type app struct {
	masterKeyID atomic.Pointer[string]
	mu          sync.RWMutex // guards mgr and kms against Deinit
	mgr         *keys.Manager
	kms         keys.KMS
	faults      faultSetter      // the mock's, when the mock is in use
	bundle      *recovery.Bundle // in recovery mode
}

// attemptCounter is implemented by both backends: the HTTP attempts of a
// KMS operation, the retries among them, and the throttled ones.
type attemptCounter interface {
	Attempts(op string) (attempts, retries, throttled int64)
}

// faultSetter is implemented by the mock backend (mock builds only).
type faultSetter interface {
	SetFaultSpec(spec string, apply bool) error
}

var errNotMock = errors.New("the mock KMS is not in use (aws_key_management_mock=OFF)")

// maxMasterKeyID is the longest KeyId KMS takes; a SET GLOBAL of a longer
// aws_key_management_master_key_id is refused by plugin.c's check.
const maxMasterKeyID = 2048

// deinitWait bounds how long Deinit waits for calls in flight (their KMS
// calls are cancelled first, so this is for disk I/O that hangs).
const deinitWait = 5 * time.Second

func (a *app) Init(s cabi.Settings) error {
	if len(s.MasterKeyID) > maxMasterKeyID {
		return fmt.Errorf("aws_key_management_master_key_id has %d characters; a KMS key id, ARN or alias has at most %d", len(s.MasterKeyID), maxMasterKeyID)
	}
	a.masterKeyID.Store(&s.MasterKeyID)
	log := cabi.Log{}
	var kms keys.KMS
	if s.RecoveryBundle != "" {
		b, err := openRecovery(s, log)
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.bundle = b // Deinit closes it, also after a failed init
		a.mu.Unlock()
		kms = b
	} else {
		var err error
		if kms, err = newBackend(s, log); err != nil {
			return fmt.Errorf("initializing KMS client: %w", err)
		}
	}
	a.faults, _ = kms.(faultSetter)
	var cache keys.Cache
	cCache, cLocked, err := cabi.OpenKeyCache()
	if err != nil {
		log.Warning(err.Error() + "; every key request enters Go")
	} else {
		cache = cCache
	}
	var timeout time.Duration
	if a.faults != nil {
		// The AWS client bounds its own calls; the mock honours
		// request_timeout through the manager's deadline.
		timeout = s.RequestTimeout
	}
	mgr := keys.New(keys.Config{
		Timeout:     timeout,
		MasterKeyID: func() string { return *a.masterKeyID.Load() },
		KeySpec:     cabi.CurrentKeySpec,
		KMS:         kms,
		Store:       keyfile.New(s.KeyfileDir),
		Log:         log,
		Cache:       cache,
		Fallback:    cabi.FallbackToOlderVersion,
		DataDir:     ".", // the server runs the plugin in its datadir
	})
	if err := mgr.Open(); err != nil {
		return fmt.Errorf("%w (aws_key_management_keyfile_dir=%q)", err, s.KeyfileDir)
	}
	goLocked, lockErr := mgr.KeyMemory()
	switch {
	case goLocked && (cache == nil || cLocked):
		log.Note("plaintext keys are kept in locked memory (never swapped), excluded from core dumps")
	default:
		why := "mlock refused"
		if lockErr != nil {
			why = lockErr.Error()
		}
		log.Warning("plaintext keys could not be locked in memory (" + why +
			"): they may be written to swap; raise the server's RLIMIT_MEMLOCK (systemd: LimitMEMLOCK=). They stay excluded from core dumps")
	}
	a.mu.Lock()
	a.mgr, a.kms = mgr, kms
	a.mu.Unlock()
	preload(mgr, kms, s, log)
	settle(log)
	return nil
}

// preload unwraps every key file now, in parallel, so the server's first
// requests (and everything while KMS is slow or down later) are served
// from memory. It ends when every version is loaded, or once none has
// loaded for one KMS call's time limit (KMS down, no credentials): a
// throttled start is slow but complete, past that limit if it must be.
// What is not done is unwrapped on first use.
func preload(mgr *keys.Manager, kms keys.KMS, s cabi.Settings, log cabi.Log) {
	limit := 30 * time.Second
	if b, ok := kms.(interface{ CallTimeout() time.Duration }); ok {
		limit = b.CallTimeout()
	} else if s.RequestTimeout > 0 {
		limit = s.RequestTimeout
	}
	res := mgr.Preload(context.Background(), keys.PreloadConfig{Parallel: preloadParallel, Stall: limit})
	if res.Versions == 0 {
		return
	}
	msg := fmt.Sprintf("unwrapped %d of %d key versions at start in %v (%d KMS calls at most in flight)",
		res.Loaded, res.Versions, res.Elapsed.Round(time.Millisecond), preloadParallel)
	if p, ok := kms.(interface{ Pacing() ratelimit.Stats }); ok {
		if st := p.Pacing(); st.Throttled > 0 {
			msg += fmt.Sprintf("; KMS throttled %d of %d requests", st.Throttled, st.Requests)
			if st.Rate > 0 {
				msg += fmt.Sprintf(", paced at %.1f/s now", st.Rate)
			}
		}
	}
	if res.Failed > 0 {
		log.Warning(msg + fmt.Sprintf("; %d failed and will be tried again on first use", res.Failed))
		// A cause only the operator can fix (a disabled master key, an
		// expired session) is said now, in upstream's words plus what to
		// do: the server may not get as far as a first use.
		if a := keys.Advice(res.FirstErr); a != "" {
			var ke keys.KMSError
			text := res.FirstErr.Error()
			if errors.As(res.FirstErr, &ke) {
				text = ke.Error()
			}
			log.KMSError(fmt.Sprintf("%s (at start, %d of %d key versions); %s", text, res.Failed, res.Versions, a))
		}
		return
	}
	log.Note(msg)
}

// preloadParallel bounds Decrypt calls in flight at start: well inside
// KMS's per-account request quotas (thousands per second), enough to
// unwrap 100 keys at 50 ms latency in under 0.5 s (make bench).
const preloadParallel = 16

func (a *app) Deinit() {
	a.mu.Lock()
	mgr, bundle := a.mgr, a.bundle
	a.mgr, a.kms, a.bundle = nil, nil, nil
	a.mu.Unlock()
	if mgr != nil {
		mgr.Close(deinitWait)
	}
	if bundle != nil {
		bundle.Close() // after the manager: no call uses it any more
	}
}

func (a *app) manager() *keys.Manager {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.mgr
}

func (a *app) LatestKeyVersion(id uint32) uint32 {
	if m := a.manager(); m != nil {
		return m.LatestKeyVersion(id)
	}
	return keys.VersionInvalid
}

func (a *app) GetKey(id, version uint32, dst []byte) (uint32, uint32) {
	if m := a.manager(); m != nil {
		return m.GetKey(id, version, dst)
	}
	return 0, keys.VersionInvalid
}

func (a *app) Rotate(n int) {
	if m := a.manager(); m != nil {
		m.Rotate(n)
		settle(cabi.Log{})
	}
}

// settle gives back, after a burst of KMS work (the start, a rotation),
// what only that work needed, so that the server's resident memory is what
// serving keys needs (docs/PERFORMANCE.md, "where the memory goes"): the
// Go heap's free pages (debug.FreeOSMemory: the start's garbage, about
// 1.3 MB), and the clean pages of this library's code and read-only data
// that the work mapped in (about 9.5 MB at start: mostly the AWS SDK's code
// and Go's pclntab; the page cache keeps them, a later call maps back what
// it runs). Nothing here touches the keys' memory.
func settle(log cabi.Log) {
	debug.FreeOSMemory()
	if _, err := memtrim.DropClean(reflect.ValueOf(settle).Pointer()); err != nil {
		log.Note(err.Error() + "; the library's pages stay resident")
	}
}

func (a *app) SetMasterKeyID(id string) { a.masterKeyID.Store(&id) }

func (a *app) Status() cabi.Status {
	a.mu.RLock()
	mgr, kms := a.mgr, a.kms
	a.mu.RUnlock()
	var st cabi.Status
	if mgr == nil {
		return st
	}
	s := mgr.Stats()
	st.KeysLoaded, st.VersionsLoaded, st.VersionsFailed = int64(s.KeyIDs), int64(s.Versions), int64(s.Failed)
	st.DecryptCalls, st.DecryptErrors = s.Decrypt.Calls, s.Decrypt.Errors
	st.GenerateCalls, st.GenerateErrors = s.Generate.Calls, s.Generate.Errors
	if ac, ok := kms.(attemptCounter); ok {
		_, st.DecryptRetries, st.DecryptThrottled = ac.Attempts(keys.OpDecrypt)
		_, st.GenerateRetries, st.GenerateThrottled = ac.Attempts(keys.OpGenerate)
	}
	if !s.LastSuccess.IsZero() {
		st.LastKMSSuccess = s.LastSuccess.Unix()
	}
	if !s.LastFailure.IsZero() {
		st.LastKMSFailure = s.LastFailure.Unix()
	}
	st.StartUnwrapMillis = s.Start.Elapsed.Milliseconds()
	st.StartVersions, st.StartFailed = int64(s.Start.Versions), int64(s.Start.Failed)
	return st
}

func (a *app) MockFaults(spec string, apply bool) error {
	if a.faults == nil {
		return errNotMock
	}
	return a.faults.SetFaultSpec(spec, apply)
}
