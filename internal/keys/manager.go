package keys

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
)

// Return codes of the encryption plugin API (plugin_encryption.h).
const (
	// VersionInvalid is ENCRYPTION_KEY_VERSION_INVALID.
	VersionInvalid = keyfile.InvalidVersion
	// BufferTooSmall is ENCRYPTION_KEY_BUFFER_TOO_SMALL.
	BufferTooSmall uint32 = 100
)

// MaxKeyLength is MY_AES_MAX_KEY_LENGTH: the largest key the server takes.
const MaxKeyLength = 32

// KMS is what the manager needs from a key management service: the two
// calls the C++ plugin makes. keySpec is "AES_128" or "AES_256".
type KMS interface {
	GenerateDataKeyWithoutPlaintext(ctx context.Context, masterKeyID, keySpec string) ([]byte, error)
	Decrypt(ctx context.Context, blob []byte) ([]byte, error)
}

// APIError is the shape of a KMS service error (smithy.APIError has it,
// and so does the mock's error type): an exception name and a message.
type APIError interface {
	error
	ErrorCode() string
	ErrorMessage() string
}

// Logger receives the plugin's messages. Note, Warning and Error go to the
// server's error log only; ClientError and ClientWarning go to the client
// of the statement that caused them (the error log when there is none).
type Logger interface {
	Note(msg string)
	Warning(msg string)
	Error(msg string)
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
	// Cache, if set, receives every loaded key and each key id's latest
	// version once its key is loaded, so that the ABI layer can serve
	// them without entering Go.
	Cache Cache
}

// Cache is a copy of the loaded keys that is read elsewhere (the C side of
// the plugin). Put and SetLatest are called with the manager's lock held,
// Put before the SetLatest that names its version.
type Cache interface {
	Put(id, ver uint32, key []byte)
	SetLatest(id, ver uint32)
	Reset()
}

// Manager holds the key state of one plugin lifetime.
type Manager struct {
	cfg Config

	mu     sync.RWMutex
	latest map[uint32]uint32   // key id -> highest version that exists
	keys   map[uint64]*version // (id, version) -> state of that version
	// genRetry holds the backoff of key ids whose version 1 could not be
	// generated, so that page writes do not call KMS for each page.
	genRetry map[uint32]*version

	locks sync.Map // lockKey -> *sync.Mutex: one per key id (generation) or version (unwrap)

	arena *keyArena // where plaintext keys live: locked, not dumped
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
	return &Manager{
		arena:    newKeyArena(),
		cfg:      cfg,
		latest:   make(map[uint32]uint32),
		keys:     make(map[uint64]*version),
		genRetry: make(map[uint32]*version),
	}
}

// Open scans the key directory: it learns which key ids and versions exist
// (nothing is unwrapped yet, as upstream) and removes temporary files left
// by an interrupted write.
func (m *Manager) Open() error {
	m.arena.mu.Lock()
	err := m.arena.grow() // so that KeyMemory can tell at once
	m.arena.mu.Unlock()
	if err != nil {
		m.cfg.Log.Warning("AWS KMS plugin: " + err.Error() + "; keys are kept in ordinary memory")
	}
	removed, err := m.cfg.Store.CleanTemp()
	for _, name := range removed {
		m.cfg.Log.Note(fmt.Sprintf("AWS KMS plugin: removed %s, left over from an interrupted key file write", name))
	}
	if err != nil {
		m.cfg.Log.Warning("AWS KMS plugin: " + err.Error())
	}
	entries, err := m.cfg.Store.Scan()
	if err != nil {
		return fmt.Errorf("opening key store: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range entries {
		if e.Version > m.latest[e.ID] {
			m.latest[e.ID] = e.Version
		}
	}
	return nil
}

// Close wipes every plaintext key (here and in the Cache) and forgets
// all state.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.Cache != nil {
		m.cfg.Cache.Reset()
	}
	for _, v := range m.keys {
		wipe(v.key)
	}
	m.arena.close()
	m.keys = make(map[uint64]*version)
	m.latest = make(map[uint32]uint32)
	m.genRetry = make(map[uint32]*version)
}

// KeyMemory tells whether plaintext keys are in locked memory; when not,
// err says why (typically RLIMIT_MEMLOCK, LimitMEMLOCK= in systemd).
func (m *Manager) KeyMemory() (locked bool, err error) {
	m.arena.mu.Lock()
	defer m.arena.mu.Unlock()
	return m.arena.locked && len(m.arena.chunks) > 0, m.arena.lockErr
}

// keep moves a fresh plaintext key into the arena (wiping the source) and
// publishes it to the Cache. Called with m.mu held for writing.
func (m *Manager) keep(id, ver uint32, key []byte) []byte {
	if stored, err := m.arena.store(key); err == nil {
		key = stored
	} else {
		m.cfg.Log.Warning("AWS KMS plugin: " + err.Error() + "; this key is kept in ordinary memory")
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
	if m.cfg.Cache != nil {
		m.cfg.Cache.Put(id, ver, key)
		if ver == m.latest[id] {
			m.cfg.Cache.SetLatest(id, ver)
		}
	}
	return key
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
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
// latest version of the key id.
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

// LatestKeyVersion implements get_latest_key_version: the latest version of
// the key, unwrapped and ready, or VersionInvalid. A key id seen for the
// first time gets version 1 (when master_key_id is set).
func (m *Manager) LatestKeyVersion(id uint32) uint32 {
	if id == 0 {
		return VersionInvalid // not a key id: no file name parses to it
	}
	key, latest := m.cached(id, 0)
	if key != nil {
		return latest
	}
	if latest == 0 {
		var ok bool
		if latest, ok = m.createFirst(id); !ok {
			return VersionInvalid
		}
	}
	_, err := m.unwrapErr(id, latest, false)
	if err == nil {
		return latest
	}
	return m.fallback(id, latest, err)
}

// maxFallback bounds how many older versions LatestKeyVersion looks at.
const maxFallback = 16

// fallback picks the version to encrypt with when the latest one cannot
// be unwrapped: the highest older version that can. InnoDB remembers an
// "invalid" answer for a tablespace and never asks again (a later write
// stops the server), so an older, good key is the safer answer. While
// KMS is failing only versions already loaded are used (no KMS calls);
// when the latest file itself is damaged, older versions are unwrapped.
// The latest version is tried again after its backoff, and used as soon
// as it unwraps.
func (m *Manager) fallback(id, latest uint32, cause error) uint32 {
	permanent := !transient(cause) && !errors.Is(cause, errBackoff)
	for v := latest - 1; v >= 1 && latest-v <= maxFallback; v-- {
		if key, _ := m.cached(id, v); key != nil {
			m.noteFallback(id, latest, v, cause)
			return v
		}
		if permanent {
			if _, err := m.unwrapErr(id, v, false); err == nil {
				m.noteFallback(id, latest, v, cause)
				return v
			}
		}
	}
	return VersionInvalid
}

// noteFallback logs a fallback when it follows a real attempt (not every
// page write during a backoff).
func (m *Manager) noteFallback(id, latest, used uint32, cause error) {
	if errors.Is(cause, errBackoff) {
		return
	}
	m.cfg.Log.Warning(fmt.Sprintf("AWS KMS plugin: key %d, version %d cannot be used now; new data is encrypted with version %d until it can", id, latest, used))
}

// GetKey implements get_key: it copies the key into dst and returns its
// length and 0; with dst too small (or nil) it returns the length and
// BufferTooSmall; for a version that does not exist or cannot be
// unwrapped it returns VersionInvalid.
func (m *Manager) GetKey(id, ver uint32, dst []byte) (uint32, uint32) {
	if id == 0 || ver == 0 || ver == VersionInvalid {
		return 0, VersionInvalid
	}
	if n, code, ok := m.copyKey(id, ver, dst); ok {
		return n, code
	}
	if _, ok := m.unwrap(id, ver); !ok {
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

func (m *Manager) ctx() (context.Context, context.CancelFunc) {
	if m.cfg.Timeout > 0 {
		return context.WithTimeout(context.Background(), m.cfg.Timeout)
	}
	return context.WithCancel(context.Background())
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

// unwrap loads a version from its file and KMS Decrypt. One caller per
// version does the work; the others wait for it and then read the cache.
func (m *Manager) unwrap(id, ver uint32) ([]byte, bool) {
	key, err := m.unwrapErr(id, ver, false)
	return key, err == nil
}

// unwrapErr is unwrap with the reason; force ignores the backoff of an
// earlier failure (Preload's own retries).
func (m *Manager) unwrapErr(id, ver uint32, force bool) ([]byte, error) {
	mu := m.lock(lockKey{'u', id, ver})
	defer mu.Unlock()

	m.mu.RLock()
	v := m.keys[kv(id, ver)]
	var key []byte
	var retryAt time.Time
	if v != nil {
		key, retryAt = v.key, v.retryAt
	}
	m.mu.RUnlock()
	if key != nil {
		return key, nil
	}
	if !force && m.cfg.Now().Before(retryAt) {
		return nil, errBackoff // failed recently: do not hammer KMS
	}

	key, err := m.readAndDecrypt(id, ver)
	if errors.Is(err, keyfile.ErrNotFound) {
		m.cfg.Log.Warning(fmt.Sprintf("AWS KMS plugin: key %d, version %d does not exist: %v", id, ver, err))
		return nil, err // nothing recorded: no phantom versions
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v = m.keys[kv(id, ver)]
	if v == nil {
		v = &version{}
		m.keys[kv(id, ver)] = v
	}
	if err != nil {
		v.failures++
		v.retryAt = m.cfg.Now().Add(m.backoff(v.failures))
		m.cfg.Log.Warning(fmt.Sprintf("AWS KMS plugin: key %d, version %d could not be decrypted", id, ver))
		return nil, err
	}
	// A file that exists and unwraps is a real version (for example
	// written by another server sharing keyfile_dir): keep may move
	// "latest" to it. Only proven versions do; upstream let any request.
	key = m.keep(id, ver, key)
	m.cfg.Log.Note(fmt.Sprintf("AWS KMS plugin: loaded key %d, version %d, key length %d bit", id, ver, len(key)*8))
	return key, nil
}

// readAndDecrypt reads a key file and unwraps it. Errors other than a
// missing file are logged here with the file or KMS detail.
func (m *Manager) readAndDecrypt(id, ver uint32) ([]byte, error) {
	blob, err := m.cfg.Store.Read(id, ver)
	if err != nil {
		if !errors.Is(err, keyfile.ErrNotFound) {
			// A damaged file is this version's problem only: a warning
			// naming the file and the reason, and the server goes on.
			m.cfg.Log.Warning("AWS KMS plugin: invalid key file: " + err.Error())
		}
		return nil, fmt.Errorf("%w: %w", errKeyFile, err)
	}
	ctx, cancel := m.ctx()
	defer cancel()
	key, err := m.cfg.KMS.Decrypt(ctx, blob)
	if err != nil {
		// Upstream's words, then the file (upstream did not say which).
		m.cfg.Log.Error(FormatKMSError("Decrypt", err) + " (" + keyfile.Name(id, ver) + ")")
		return nil, fmt.Errorf("decrypting %s: %w", keyfile.Name(id, ver), err)
	}
	if err := checkKeyLength(key); err != nil {
		wipe(key)
		m.cfg.Log.Error(fmt.Sprintf("AWS KMS plugin: %s: %v", keyfile.Name(id, ver), err))
		return nil, fmt.Errorf("%w: %w", errKeyFile, err)
	}
	return key, nil
}

func checkKeyLength(key []byte) error {
	switch len(key) {
	case 16, 24, 32:
		return nil
	}
	if len(key) > MaxKeyLength {
		return fmt.Errorf("encoding key too large (%d bytes, at most %d)", len(key), MaxKeyLength)
	}
	return fmt.Errorf("decrypted key has %d bytes; an AES key has 16, 24 or 32", len(key))
}

// FormatKMSError renders a KMS failure in upstream's words:
// "AWS KMS plugin : KMS Client API 'Decrypt' failed : <Exception> - <message>".
// Errors without an exception name (network, timeout) show their text.
func FormatKMSError(op string, err error) string {
	var api APIError
	if errors.As(err, &api) {
		return fmt.Sprintf("AWS KMS plugin : KMS Client API '%s' failed : %s - %s", op, api.ErrorCode(), api.ErrorMessage())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("AWS KMS plugin : KMS Client API '%s' failed : RequestTimeout - %v", op, err)
	}
	return fmt.Sprintf("AWS KMS plugin : KMS Client API '%s' failed : RequestError - %v", op, err)
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
		m.genFailed(id)
		return 0, false
	}
	return 1, true
}

// generate asks KMS for a new wrapped data key, proves it unwraps, stores
// it as (id, ver) and publishes it. Nothing is written unless the new key
// unwraps, and nothing is published unless the file is durable.
func (m *Manager) generate(id, ver uint32) error {
	ctx, cancel := m.ctx()
	defer cancel()
	blob, err := m.cfg.KMS.GenerateDataKeyWithoutPlaintext(ctx, m.cfg.MasterKeyID(), m.cfg.KeySpec())
	if err != nil {
		m.cfg.Log.Error(FormatKMSError("GenerateDataKeyWithoutPlaintext", err))
		return fmt.Errorf("generating data key: %w", err)
	}
	key, err := m.cfg.KMS.Decrypt(ctx, blob)
	if err != nil {
		m.cfg.Log.Error(FormatKMSError("Decrypt", err))
		return fmt.Errorf("decrypting new data key: %w", err)
	}
	if err := checkKeyLength(key); err != nil {
		wipe(key)
		m.cfg.Log.Error(fmt.Sprintf("AWS KMS plugin: new data key for key id=%d: %v", id, err))
		return err
	}
	if err := m.cfg.Store.Create(id, ver, blob); err != nil {
		wipe(key)
		m.cfg.Log.Error("AWS KMS plugin: Can't create key file: " + err.Error())
		return err
	}
	m.cfg.Log.Note(fmt.Sprintf("AWS KMS plugin: generated encrypted datakey for key id=%d, version=%d", id, ver))
	m.mu.Lock()
	key = m.keep(id, ver, key)
	delete(m.genRetry, id)
	m.mu.Unlock()
	m.cfg.Log.Note(fmt.Sprintf("AWS KMS plugin: loaded key %d, version %d, key length %d bit", id, ver, len(key)*8))
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
