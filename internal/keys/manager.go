package keys

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/datafiles"
	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/lockedmem"
	"github.com/mariadb-go/aws_key_management/internal/logtext"
)

// Return codes of the encryption plugin API (plugin_encryption.h; the ABI
// layer checks them against the server's header at compile time).
const (
	// VersionInvalid is ENCRYPTION_KEY_VERSION_INVALID.
	VersionInvalid = keyfile.InvalidVersion
	// BufferTooSmall is ENCRYPTION_KEY_BUFFER_TOO_SMALL.
	BufferTooSmall uint32 = 100
)

// MaxKeyLength is MY_AES_MAX_KEY_LENGTH: the largest key the server takes.
const MaxKeyLength = lockedmem.SlotSize

// KMS is what the manager needs from a key management service: the two
// calls the C++ plugin makes.
type KMS interface {
	// GenerateDataKeyWithoutPlaintext returns a new data key wrapped
	// under masterKeyID; keySpec is "AES_128" or "AES_256".
	GenerateDataKeyWithoutPlaintext(ctx context.Context, masterKeyID, keySpec string) ([]byte, error)
	// Decrypt unwraps blob into dst (MaxKeyLength bytes of locked
	// memory) and returns the key's length; a key that does not fit is
	// an error. On error dst may hold anything: the caller wipes it.
	Decrypt(ctx context.Context, blob, dst []byte) (int, error)
}

// KMSError is what the manager needs to know of a failed KMS call. The
// backends' errors (internal/kmserr) implement it; its Error text is the
// line the C++ plugin logged after its "AWS KMS plugin : " prefix.
type KMSError interface {
	error
	// Transient: the same call may succeed later (throttling, KMS
	// internal errors, timeouts, network errors).
	Transient() bool
}

// Logger receives the plugin's messages, without a prefix: the ABI layer
// adds "AWS KMS plugin: " to Note, Warning and Error, and the C++
// plugin's "AWS KMS plugin : " to KMSError. Those go to the server's error
// log only; ClientError and ClientWarning go, as given, to the client of
// the statement that caused them (the error log when there is none).
type Logger interface {
	Note(msg string)
	Warning(msg string)
	Error(msg string)
	KMSError(msg string)
	ClientError(msg string)
	ClientWarning(msg string)
}

// Config is what a Manager needs. KMS, Store and Log are required.
type Config struct {
	// MasterKeyID and KeySpec return the current values of the dynamic
	// variables aws_key_management_master_key_id and _key_spec
	// ("AES_128" or "AES_256"); they are read at each generation.
	MasterKeyID func() string
	KeySpec     func() string
	KMS         KMS
	Store       *keyfile.Store
	Log         Logger
	// Timeout bounds one KMS operation including the backend's retries;
	// zero means no bound beyond the backend's own.
	Timeout time.Duration
	// RetryMin and RetryMax bound the wait before a failed unwrap or
	// generation of a key is tried again (doubling from RetryMin).
	RetryMin, RetryMax time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// DataDir, if set, is the server's datadir: when the key directory
	// holds no key file at all, Open looks there for encrypted data, and
	// the key ids it names are not generated anew (see guard.go).
	DataDir string
	// Cache, if set, receives every loaded key and each key id's latest
	// version once its key is loaded, so that the ABI layer can serve
	// them without entering Go.
	Cache Cache
	// Fallback returns the current value of the dynamic variable
	// aws_key_management_fallback_to_older_version: whether new data may
	// be encrypted with an older version of a key while its latest
	// version cannot be unwrapped (the default, nil, is true). False trades
	// availability for never using a version the operator rotated away
	// from: the latest version or nothing.
	Fallback func() bool
}

// Cache is a copy of the loaded keys that is read elsewhere (the C side of
// the plugin). Put, SetLatest and Reset are called with the manager's lock
// held, Put before the SetLatest that names its version, and never after
// Reset.
type Cache interface {
	Put(id, ver uint32, key []byte)
	SetLatest(id, ver uint32)
	Reset()
}

// Manager holds the key state of one plugin lifetime.
type Manager struct {
	cfg Config

	mu     sync.RWMutex
	closed bool
	latest map[uint32]uint32   // key id -> highest version that exists
	best   map[uint32]uint32   // key id -> highest version loaded
	keys   map[uint64]*version // (id, version) -> state of that version
	// genRetry holds the backoff of key ids whose version 1 could not be
	// generated, so that page writes do not call KMS for each page.
	genRetry map[uint32]*version
	// background holds the versions being unwrapped off the lookup path.
	background map[uint64]bool
	// guard names the key ids the datadir's data is encrypted with, when
	// Open found no key file (set by Open only; see guard.go).
	guard map[uint32][]datafiles.Evidence

	locks sync.Map // lockKey -> *sync.Mutex: one per key id (generation) or version (unwrap)

	arena    *lockedmem.Arena // where plaintext keys live: locked, not dumped
	heapOnce sync.Once        // the warning that a key is kept in ordinary memory

	// calls counts the calls in flight (entry points and background
	// unwraps), so that Close can wait for them; base is the parent of
	// every KMS call's context, cancelled by Close.
	calls sync.WaitGroup
	base  context.Context
	stop  context.CancelFunc

	count counters // for Stats
}

type version struct {
	key      []byte    // plaintext; nil until unwrapped
	failures int       // consecutive failed unwraps
	retryAt  time.Time // no new attempt before this
}

type lockKey struct {
	kind    byte // 'g' generation of key id, 'u' unwrap of a version
	id, ver uint32
}

func kv(id, ver uint32) uint64 { return uint64(id)<<32 | uint64(ver) }

// New returns a Manager; call Open before serving keys.
func New(cfg Config) *Manager {
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryMin)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	base, stop := context.WithCancel(context.Background())
	return &Manager{
		arena:      lockedmem.New(),
		cfg:        cfg,
		latest:     make(map[uint32]uint32),
		best:       make(map[uint32]uint32),
		keys:       make(map[uint64]*version),
		genRetry:   make(map[uint32]*version),
		background: make(map[uint64]bool),
		base:       base,
		stop:       stop,
	}
}

// Open scans the key directory: it learns which key ids and versions exist
// (nothing is unwrapped yet, as upstream), warns about names it ignores,
// and removes temporary files left by an interrupted write. On error the
// Manager holds nothing and must not be used.
func (m *Manager) Open() error {
	if err := m.arena.Grow(); err != nil { // so that KeyMemory can tell at once
		m.cfg.Log.Warning(err.Error() + "; keys are kept in ordinary memory")
	}
	removed, err := m.cfg.Store.CleanTemp()
	for _, name := range removed {
		m.cfg.Log.Note(fmt.Sprintf("removed %s, left over from an interrupted key file write", name))
	}
	if err != nil {
		m.cfg.Log.Warning(err.Error())
	}
	listing, err := m.cfg.Store.List()
	if err != nil {
		m.arena.Close(true)
		return fmt.Errorf("opening key store: %w", err)
	}
	for _, ig := range listing.Ignored {
		m.cfg.Log.Warning(fmt.Sprintf("ignoring %s: %v; rename or remove it", ig.Name, ig.Reason))
	}
	if len(listing.Entries) == 0 {
		m.scanGuard()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range listing.Entries {
		if e.Version > m.latest[e.ID] {
			m.latest[e.ID] = e.Version
		}
	}
	return nil
}

// Close stops the Manager: calls that arrive later fail, KMS calls in
// flight are cancelled, every plaintext key is wiped (here and in the
// Cache), and Close waits up to wait for the calls in flight to end. A
// call that ends later finds the Manager closed: it wipes what it got and
// publishes nothing.
func (m *Manager) Close(wait time.Duration) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	if m.cfg.Cache != nil {
		m.cfg.Cache.Reset()
	}
	for _, v := range m.keys {
		lockedmem.Wipe(v.key)
	}
	m.keys = make(map[uint64]*version)
	m.latest = make(map[uint32]uint32)
	m.best = make(map[uint32]uint32)
	m.genRetry = make(map[uint32]*version)
	m.mu.Unlock()

	m.stop()
	done := make(chan struct{})
	go func() {
		m.calls.Wait()
		close(done)
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		m.arena.Close(true)
	case <-t.C:
		// A call still runs (a hung disk, say). Its key slot must stay
		// mapped: it may still be written. It is wiped now and again by
		// that call when it ends.
		m.arena.Close(false)
		m.cfg.Log.Warning(fmt.Sprintf("stopped with key calls still in flight after %v; what they return is wiped and dropped", wait))
	}
}

// enter registers a call in flight; it returns false once the Manager is
// closed. Every enter that returns true needs a leave.
func (m *Manager) enter() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return false
	}
	m.calls.Add(1)
	return true
}

func (m *Manager) leave() { m.calls.Done() }

// errClosed: the Manager was closed while the call ran.
var errClosed = errors.New("the plugin is stopping")

// KeyMemory tells whether plaintext keys are in locked memory; when not,
// err says why (typically RLIMIT_MEMLOCK, LimitMEMLOCK= in systemd).
func (m *Manager) KeyMemory() (locked bool, err error) {
	return m.arena.Locked()
}

// slot returns memory for one plaintext key: a slot of the locked arena,
// or, if no more can be mapped, ordinary memory (with one warning).
func (m *Manager) slot() ([]byte, error) {
	s, err := m.arena.Alloc()
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, lockedmem.ErrClosed):
		return nil, errClosed
	}
	m.heapOnce.Do(func() {
		m.cfg.Log.Warning(err.Error() + "; keys loaded from now on are kept in ordinary memory")
	})
	return make([]byte, MaxKeyLength), nil
}

// keep stores a fresh plaintext key (a slot from m.slot, cut to its
// length) and publishes it to the Cache. Called with m.mu held for
// writing. Once closed, the key is wiped and dropped: false.
func (m *Manager) keep(id, ver uint32, key []byte) bool {
	if m.closed {
		m.arena.Release(key)
		return false
	}
	v := m.keys[kv(id, ver)]
	if v == nil {
		v = &version{}
		m.keys[kv(id, ver)] = v
	}
	v.key, v.failures, v.retryAt = key, 0, time.Time{}
	if ver > m.latest[id] {
		m.latest[id] = ver
	}
	if ver > m.best[id] {
		m.best[id] = ver
	}
	if m.cfg.Cache != nil {
		m.cfg.Cache.Put(id, ver, key)
		if ver == m.latest[id] {
			m.cfg.Cache.SetLatest(id, ver)
		}
	}
	return true
}

// KeyIDs returns the key ids that have at least one version, ascending.
func (m *Manager) KeyIDs() []uint32 {
	m.mu.RLock()
	ids := make([]uint32, 0, len(m.latest))
	for id := range m.latest {
		ids = append(ids, id)
	}
	m.mu.RUnlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// cached returns the plaintext of a version if it is loaded, and the
// latest version of the key id (ver 0 means the latest).
func (m *Manager) cached(id, ver uint32) (key []byte, latest uint32) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	latest = m.latest[id]
	if ver == 0 {
		ver = latest
	}
	if v := m.keys[kv(id, ver)]; v != nil {
		key = v.key
	}
	return key, latest
}

// state tells, for a key id, its latest version and the highest version
// that is loaded (0 if none).
func (m *Manager) state(id uint32) (latest, best uint32) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.latest[id], m.best[id]
}

// LatestKeyVersion implements get_latest_key_version: the latest version of
// the key, unwrapped and ready, or VersionInvalid. A key id seen for the
// first time gets version 1 (when master_key_id is set).
//
// It waits for KMS only when it has nothing else to give: a new key id,
// or a key none of whose versions is loaded. When the latest version is
// not loaded but an older one is, it answers the older one at once and
// unwraps the latest in the background; answers switch to the latest as
// soon as it is loaded.
func (m *Manager) LatestKeyVersion(id uint32) uint32 {
	if id == 0 {
		return VersionInvalid // not a key id: no file name parses to it
	}
	if !m.enter() {
		return VersionInvalid
	}
	defer m.leave()
	latest, best := m.state(id)
	if latest == 0 {
		var ok bool
		if latest, ok = m.createFirst(id); !ok {
			return VersionInvalid
		}
		_, best = m.state(id)
	}
	switch {
	case best == latest:
		return latest
	case best != 0 && m.fallbackAllowed():
		m.unwrapLater(id, latest)
		return best
	}
	err := m.unwrap(id, latest, false)
	if err == nil {
		return latest
	}
	return m.fallback(id, latest, err)
}

// fallbackAllowed reads aws_key_management_fallback_to_older_version.
func (m *Manager) fallbackAllowed() bool {
	return m.cfg.Fallback == nil || m.cfg.Fallback()
}

// unwrapLater starts unwrapping a version in the background unless that
// is under way already or the version failed recently (its backoff).
func (m *Manager) unwrapLater(id, ver uint32) {
	k := kv(id, ver)
	m.mu.RLock()
	busy := m.background[k] || m.inBackoff(k)
	m.mu.RUnlock()
	if busy {
		return
	}
	m.mu.Lock()
	if m.closed || m.background[k] || m.inBackoff(k) {
		m.mu.Unlock()
		return
	}
	m.background[k] = true
	m.calls.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.calls.Done()
		var err error
		defer func() {
			if r := recover(); r != nil {
				m.cfg.Log.Error("internal error while unwrapping a key in the background: " + logtext.Panic(r))
			}
			m.mu.Lock()
			delete(m.background, k)
			m.mu.Unlock()
		}()
		err = m.unwrap(id, ver, false)
		if err != nil && !errors.Is(err, errBackoff) && !errors.Is(err, errClosed) {
			if _, best := m.state(id); best != 0 && best < ver {
				m.noteFallback(id, ver, best)
			}
		}
	}()
}

// inBackoff reports whether a version failed recently and is not to be
// tried yet. Called with m.mu held.
func (m *Manager) inBackoff(k uint64) bool {
	v := m.keys[k]
	return v != nil && v.key == nil && m.cfg.Now().Before(v.retryAt)
}

// maxFallback bounds how many older versions LatestKeyVersion unwraps
// when the latest version's file is unusable.
const maxFallback = 16

// fallback picks the version to encrypt with when the latest one cannot
// be unwrapped and no older one is loaded: the highest older version that
// can. InnoDB remembers an "invalid" answer for a tablespace and never
// asks again (a later write stops the server), so an older, good key is
// the safer answer. While KMS is failing no further KMS calls are made
// (they would fail too); when the latest file itself is damaged, older
// versions are unwrapped. The latest version is tried again after its
// backoff, and used as soon as it unwraps. With the fallback switched off
// there is no older answer: VersionInvalid.
func (m *Manager) fallback(id, latest uint32, cause error) uint32 {
	if !m.fallbackAllowed() {
		return VersionInvalid
	}
	if _, best := m.state(id); best != 0 {
		return best // loaded meanwhile
	}
	if transient(cause) || errors.Is(cause, errBackoff) || errors.Is(cause, errClosed) {
		return VersionInvalid
	}
	for v := latest - 1; v >= 1 && latest-v <= maxFallback; v-- {
		if err := m.unwrap(id, v, false); err == nil {
			m.noteFallback(id, latest, v)
			return v
		}
	}
	return VersionInvalid
}

// noteFallback logs that a key is used at an older version, after a real
// attempt at the latest one failed.
func (m *Manager) noteFallback(id, latest, used uint32) {
	m.cfg.Log.Warning(fmt.Sprintf("key %d, version %d cannot be used now; new data is encrypted with version %d until it can", id, latest, used))
}

// GetKey implements get_key: it copies the key into dst and returns its
// length and 0; with dst too small (or nil) it returns the length and
// BufferTooSmall; for a version that does not exist or cannot be
// unwrapped it returns VersionInvalid.
func (m *Manager) GetKey(id, ver uint32, dst []byte) (uint32, uint32) {
	if id == 0 || ver == 0 || ver == VersionInvalid {
		return 0, VersionInvalid
	}
	if !m.enter() {
		return 0, VersionInvalid
	}
	defer m.leave()
	if n, code, ok := m.copyKey(id, ver, dst); ok {
		return n, code
	}
	if err := m.unwrap(id, ver, false); err != nil {
		return 0, VersionInvalid
	}
	if n, code, ok := m.copyKey(id, ver, dst); ok {
		return n, code
	}
	return 0, VersionInvalid // closed meanwhile
}

// copyKey copies a loaded key under the read lock, so Close cannot wipe
// it half way through the copy. ok is false when the key is not loaded.
func (m *Manager) copyKey(id, ver uint32, dst []byte) (n, code uint32, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v := m.keys[kv(id, ver)]
	if v == nil || v.key == nil {
		return 0, 0, false
	}
	n = uint32(len(v.key))
	if uint32(len(dst)) < n {
		return n, BufferTooSmall, true
	}
	copy(dst, v.key)
	return n, 0, true
}

func (m *Manager) lock(k lockKey) *sync.Mutex {
	l, _ := m.locks.LoadOrStore(k, new(sync.Mutex))
	mu := l.(*sync.Mutex)
	mu.Lock()
	return mu
}

// ctx bounds one KMS operation; Close cancels it.
func (m *Manager) ctx() (context.Context, context.CancelFunc) {
	if m.cfg.Timeout > 0 {
		return context.WithTimeout(m.base, m.cfg.Timeout)
	}
	return context.WithCancel(m.base)
}

// backoff returns how long to wait after n consecutive failures.
func (m *Manager) backoff(n int) time.Duration {
	d := m.cfg.RetryMin
	for i := 1; i < n && d < m.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, m.cfg.RetryMax)
}

// errKeyFile marks failures that come from the key file itself (missing,
// unreadable, damaged, a key of the wrong length): trying again will not
// help until someone fixes the file.
var errKeyFile = errors.New("key file")

// errBackoff: the version failed to unwrap recently and is not tried yet.
var errBackoff = errors.New("unwrap failed recently; waiting before the next attempt")

// loadedOrBackoff tells whether a version needs an unwrap now: nil if it
// is loaded, errBackoff if it failed recently (unless force), errClosed.
// need is true when the caller should unwrap it.
func (m *Manager) loadedOrBackoff(id, ver uint32, force bool) (need bool, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	switch v := m.keys[kv(id, ver)]; {
	case m.closed:
		return false, errClosed
	case v != nil && v.key != nil:
		return false, nil
	case !force && m.inBackoff(kv(id, ver)):
		return false, errBackoff // failed recently: do not hammer KMS
	}
	return true, nil
}

// unwrap loads a version from its file and KMS Decrypt; nil means it is
// loaded. One caller per version does the work; the others wait for it.
// A version that failed recently is not tried before its backoff ends
// (checked before waiting), unless force (Preload's own retries).
func (m *Manager) unwrap(id, ver uint32, force bool) error {
	if need, err := m.loadedOrBackoff(id, ver, force); !need {
		return err
	}
	mu := m.lock(lockKey{'u', id, ver})
	defer mu.Unlock()
	if need, err := m.loadedOrBackoff(id, ver, force); !need {
		return err // done (or failed) by the caller we waited for
	}

	key, err := m.readAndDecrypt(id, ver)
	if errors.Is(err, keyfile.ErrNotFound) {
		m.cfg.Log.Warning(fmt.Sprintf("key %d, version %d does not exist: %v", id, ver, err))
		return err // nothing recorded: no phantom versions
	}
	if errors.Is(err, errClosed) {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if m.closed {
			return errClosed
		}
		v := m.keys[kv(id, ver)]
		if v == nil {
			v = &version{}
			m.keys[kv(id, ver)] = v
		}
		v.failures++
		v.retryAt = m.cfg.Now().Add(m.backoff(v.failures))
		m.cfg.Log.Warning(fmt.Sprintf("key %d, version %d could not be decrypted", id, ver))
		return err
	}
	// A file that exists and unwraps is a real version (for example
	// written by another server sharing keyfile_dir): keep may move
	// "latest" to it. Only proven versions do; upstream let any request.
	if !m.keep(id, ver, key) {
		return errClosed
	}
	m.cfg.Log.Note(fmt.Sprintf("loaded key %d, version %d, key length %d bit", id, ver, len(key)*8))
	return nil
}

// readAndDecrypt reads a key file and unwraps it into a key slot. Errors
// other than a missing file are logged here with the file or KMS detail.
func (m *Manager) readAndDecrypt(id, ver uint32) ([]byte, error) {
	blob, err := m.cfg.Store.Read(id, ver)
	if err != nil {
		if !errors.Is(err, keyfile.ErrNotFound) {
			// A damaged file is this version's problem only: a warning
			// naming the file and the reason, and the server goes on.
			m.cfg.Log.Warning("invalid key file: " + err.Error())
		}
		return nil, fmt.Errorf("%w: %w", errKeyFile, err)
	}
	ctx, cancel := m.ctx()
	defer cancel()
	key, err := m.decrypt(ctx, blob, " ("+keyfile.Name(id, ver)+")")
	if err != nil {
		return nil, fmt.Errorf("decrypting %s: %w", keyfile.Name(id, ver), err)
	}
	if n := len(key); n != 16 && n != 32 {
		m.arena.Release(key)
		err := fmt.Errorf("decrypted key has %d bytes; keys of this plugin have 16 (AES_128) or 32 (AES_256)", n)
		m.cfg.Log.Error(fmt.Sprintf("%s: %v", keyfile.Name(id, ver), err))
		return nil, fmt.Errorf("%w: %w", errKeyFile, err)
	}
	return key, nil
}

// decrypt unwraps blob into a fresh key slot and returns the key. A KMS
// failure is logged, in upstream's words followed by where.
func (m *Manager) decrypt(ctx context.Context, blob []byte, where string) ([]byte, error) {
	slot, err := m.slot()
	if err != nil {
		return nil, err
	}
	n, err := m.cfg.KMS.Decrypt(ctx, blob, slot)
	if m.base.Err() == nil {
		m.count.kmsDone(&m.count.decrypt, err, m.cfg.Now())
	}
	if err != nil {
		m.arena.Release(slot)
		if m.base.Err() != nil {
			return nil, errClosed // cancelled by Close: nothing to log
		}
		m.logKMS(err, where)
		return nil, err
	}
	if n <= 0 || n > len(slot) {
		m.arena.Release(slot)
		err := fmt.Errorf("KMS Decrypt returned a key of %d bytes", n)
		m.cfg.Log.Error(err.Error() + where)
		return nil, err
	}
	return slot[:n:n], nil
}

// logKMS logs a failed KMS call: the backend's own text (upstream's
// words) when it has one.
// A failure with advice (an expired session, a disabled master key) has
// it added after "; ".
func (m *Manager) logKMS(err error, where string) {
	var ke KMSError
	if errors.As(err, &ke) {
		m.cfg.Log.KMSError(ke.Error() + where + withAdvice(err))
		return
	}
	m.cfg.Log.KMSError(logtext.OneLine(err.Error(), 1024) + where + withAdvice(err))
}

// advice is implemented by the backends' errors (kmserr.Error.Advice):
// what a failure only the operator can fix means, and what to do.
type advice interface{ Advice() string }

// Advice returns err's advice, or "".
func Advice(err error) string {
	var a advice
	if errors.As(err, &a) {
		return a.Advice()
	}
	return ""
}

func withAdvice(err error) string {
	if a := Advice(err); a != "" {
		return "; " + a
	}
	return ""
}

// transient reports whether trying the same unwrap again may succeed.
func transient(err error) bool {
	if err == nil || errors.Is(err, errKeyFile) || errors.Is(err, errBackoff) || errors.Is(err, errClosed) {
		return false // a file problem does not go away by waiting
	}
	var ke KMSError
	if errors.As(err, &ke) {
		return ke.Transient()
	}
	return !errors.Is(err, context.Canceled)
}

// errNoMasterKey is upstream's error when a key must be generated but
// aws_key_management_master_key_id is empty.
const errNoMasterKey = "Can't generate encryption key, because 'aws_key_management_master_key_id' parameter is not set"

// createFirst makes version 1 of a key id that has none. It returns the
// latest version afterwards (1, or whatever another caller made).
func (m *Manager) createFirst(id uint32) (uint32, bool) {
	mu := m.lock(lockKey{'g', id, 0})
	defer mu.Unlock()
	if _, latest := m.cached(id, 0); latest != 0 {
		return latest, true // made while we waited
	}
	// Failed recently (KMS down, no master key): do not scan or call KMS
	// again for every page the server writes.
	if m.inGenBackoff(id) {
		return 0, false
	}
	// A file may have appeared since Open: written by another server
	// sharing keyfile_dir, restored from a backup, or made by hand with
	// the AWS CLI. Use it rather than generate over it.
	if onDisk, err := m.cfg.Store.Latest(id); err == nil && onDisk > 0 {
		m.mu.Lock()
		m.latest[id] = max(m.latest[id], onDisk)
		m.mu.Unlock()
		return onDisk, true
	}
	if why := m.guardRefuses(id); why != "" {
		m.cfg.Log.Error(why)
		m.genFailed(id)
		return 0, false
	}
	if m.cfg.MasterKeyID() == "" {
		m.cfg.Log.ClientError(errNoMasterKey)
		m.genFailed(id)
		return 0, false
	}
	if err := m.generate(id, 1); err != nil {
		if errors.Is(err, keyfile.ErrExists) {
			// Another process made version 1 since we scanned: use it.
			m.mu.Lock()
			m.latest[id] = max(m.latest[id], 1)
			m.mu.Unlock()
			return 1, true
		}
		if msg := refusedAdvice(id, err); msg != "" {
			m.cfg.Log.ClientWarning(msg)
		}
		m.genFailed(id)
		return 0, false
	}
	return 1, true
}

// refusedAdvice is the client message that says what a KMS refusal of a
// new data key for key id means and what to do, or "" when Advice has
// nothing to say about err.
func refusedAdvice(id uint32, err error) string {
	if a := Advice(err); a != "" {
		return fmt.Sprintf("AWS KMS refused a new data key for key id=%d: %s", id, a)
	}
	return ""
}

// keySpecLength is the length of a key of an aws_key_management_key_spec.
func keySpecLength(spec string) int {
	if spec == "AES_256" {
		return 32
	}
	return 16
}

// generate asks KMS for a new wrapped data key, proves it unwraps to a key
// of the requested length, stores it as (id, ver) and publishes it.
// Nothing is written unless the new key unwraps, and nothing is published
// unless the file is durable.
func (m *Manager) generate(id, ver uint32) error {
	ctx, cancel := m.ctx()
	defer cancel()
	spec := m.cfg.KeySpec()
	blob, err := m.cfg.KMS.GenerateDataKeyWithoutPlaintext(ctx, m.cfg.MasterKeyID(), spec)
	if m.base.Err() == nil {
		m.count.kmsDone(&m.count.generate, err, m.cfg.Now())
	}
	if err != nil {
		if m.base.Err() != nil {
			return errClosed
		}
		m.logKMS(err, "")
		// The caller gives the advice to the client: only the statement's
		// thread may (rotation generates on worker goroutines).
		return fmt.Errorf("generating data key: %w", err)
	}
	key, err := m.decrypt(ctx, blob, "")
	if err != nil {
		return fmt.Errorf("decrypting new data key: %w", err)
	}
	if want := keySpecLength(spec); len(key) != want {
		m.arena.Release(key)
		err := fmt.Errorf("new data key for key id=%d has %d bytes; key_spec %s wants %d", id, len(key), spec, want)
		m.cfg.Log.Error(err.Error())
		return err
	}
	if err := m.cfg.Store.Create(id, ver, blob); err != nil {
		m.arena.Release(key)
		m.cfg.Log.Error("Can't create key file: " + err.Error())
		return err
	}
	m.cfg.Log.Note(fmt.Sprintf("generated encrypted datakey for key id=%d, version=%d", id, ver))
	m.mu.Lock()
	kept := m.keep(id, ver, key)
	delete(m.genRetry, id)
	m.mu.Unlock()
	if !kept {
		return errClosed
	}
	m.cfg.Log.Note(fmt.Sprintf("loaded key %d, version %d, key length %d bit", id, ver, len(key)*8))
	return nil
}

// resetBackoff makes a failed version wait only the shortest backoff.
func (m *Manager) resetBackoff(id, ver uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.keys[kv(id, ver)]; v != nil && v.key == nil {
		v.failures = 1
		v.retryAt = m.cfg.Now().Add(m.cfg.RetryMin)
	}
}

func (m *Manager) inGenBackoff(id uint32) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.genRetry[id]
	return r != nil && m.cfg.Now().Before(r.retryAt)
}

func (m *Manager) genFailed(id uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.genRetry[id]
	if r == nil {
		r = &version{}
		m.genRetry[id] = r
	}
	r.failures++
	r.retryAt = m.cfg.Now().Add(m.backoff(r.failures))
}
