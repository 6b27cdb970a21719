package cabi

/*
#cgo CFLAGS: -I/usr/include/mariadb/server -I/usr/include/mariadb -DMYSQL_DYNAMIC_PLUGIN -fvisibility=hidden -Wall -Wno-unused-parameter
#cgo LDFLAGS: -l:libmysqlservices.a
#include <stdlib.h>
#include "cabi.h"
*/
import "C"

import (
	"time"
	"unsafe"

	"github.com/mariadb-go/aws_key_management/internal/buildinfo"
	"github.com/mariadb-go/aws_key_management/internal/logtext"
)

// Codes returned to the server and the longest key it takes, from
// cabi.h (plugin.c checks them against the server's headers at compile
// time; the main package checks the key manager's against these).
const (
	KeyVersionInvalid uint32 = C.AKM_KEY_VERSION_INVALID
	BufferTooSmall    uint32 = C.AKM_BUFFER_TOO_SMALL
	MaxKeyLength             = C.AKM_MAX_KEY_LENGTH

	versionInvalid = C.uint(KeyVersionInvalid)
	bufferTooSmall = C.uint(BufferTooSmall)
)

// Settings are the system variables' values at plugin init.
type Settings struct {
	MasterKeyID    string
	RequestTimeout time.Duration // 0 = SDK default
	Region         string
	EndpointURL    string
	KeyfileDir     string // "" = the datadir
	// RecoveryBundle and RecoveryIdentity: recovery without KMS ("" =
	// off); relative paths are from the datadir.
	RecoveryBundle, RecoveryIdentity string
	Mock                             bool // aws_key_management_mock=ON
	MockFaults                       string
}

var keySpecNames = [...]string{"AES_128", "AES_256"}

// Plugin is what the ABI serves. Methods are called on server threads.
type Plugin interface {
	// Init starts the plugin; an error fails plugin init (the server
	// still calls Deinit afterwards).
	Init(s Settings) error
	// Deinit stops the plugin; it must cope with a failed or partial Init.
	Deinit()
	LatestKeyVersion(id uint32) uint32
	// GetKey copies key (id, version) into dst; it returns the key length
	// and 0, BufferTooSmall or VersionInvalid (keys package codes).
	GetKey(id, version uint32, dst []byte) (length, code uint32)
	Rotate(n int)
	SetMasterKeyID(id string)
	// Status returns the counters of SHOW GLOBAL STATUS (zero before
	// init and after deinit).
	Status() Status
	// MockFaults checks (apply=false) or applies a mock fault description.
	MockFaults(spec string, apply bool) error
}

var plugin Plugin

// Register sets the implementation; the main package calls it from init,
// which runs before the server can call any shim.
func Register(p Plugin) { plugin = p }

// CurrentKeySpec reads aws_key_management_key_spec now (it is dynamic).
func CurrentKeySpec() string {
	v := C.akm_key_spec()
	if int(v) < len(keySpecNames) {
		return keySpecNames[v]
	}
	return keySpecNames[0]
}

// FallbackToOlderVersion reads aws_key_management_fallback_to_older_version
// now (it is dynamic).
func FallbackToOlderVersion() bool { return C.akm_fallback() != 0 }

// CurrentLogLevel reads aws_key_management_log_level now (it is dynamic):
// 0 Off, 1 Fatal, 2 Error, 3 Warn, 4 Info, 5 Debug, 6 Trace.
func CurrentLogLevel() int { return int(C.akm_log_level()) }

// Log writes to the server: Note, Warning, Error and KMSError to the
// error log only, ClientError and ClientWarning to the current statement.
// It is the one place the plugin's prefix is added: "AWS KMS plugin: "
// before error-log lines, and the C++ plugin's own "AWS KMS plugin : "
// before its line for a failed KMS call (DBAs' log filters look for it).
// Client messages are given as they are, as upstream gives them.
type Log struct{}

const (
	prefix    = "AWS KMS plugin: "
	prefixKMS = "AWS KMS plugin : "
)

func (Log) Note(msg string)          { logKind(C.AKM_LOG_NOTE, prefix+msg) }
func (Log) Warning(msg string)       { logKind(C.AKM_LOG_WARNING, prefix+msg) }
func (Log) Error(msg string)         { logKind(C.AKM_LOG_ERROR, prefix+msg) }
func (Log) KMSError(msg string)      { logKind(C.AKM_LOG_ERROR, prefixKMS+msg) }
func (Log) ClientError(msg string)   { logKind(C.AKM_LOG_CLIENT_ERROR, msg) }
func (Log) ClientWarning(msg string) { logKind(C.AKM_LOG_CLIENT_WARNING, msg) }

func logKind(kind C.int, msg string) {
	cs := C.CString(msg)
	defer C.free(unsafe.Pointer(cs))
	C.akm_log(kind, cs)
}

// recovered turns a panic in a shim into one error-log line naming the
// value and the panic site. Use as
// `defer recovered("get_key", func() { ret = code })`.
func recovered(op string, fail func()) {
	if r := recover(); r != nil {
		Log{}.Error("internal error in " + op + ": " + logtext.Panic(r) + "; the call failed, the server goes on")
		fail()
	}
}

//export akmGoInit
func akmGoInit() (ret C.int) {
	defer recovered("plugin init", func() { ret = 1 })
	if plugin == nil {
		Log{}.Error("no implementation registered")
		return 1
	}
	// The build this server runs, in PLUGIN_DESCRIPTION and the error log.
	build := C.CString(buildinfo.String())
	Log{}.Note("starting " + C.GoString(C.akm_set_description(build)))
	C.free(unsafe.Pointer(build))
	var cs C.struct_akm_settings
	C.akm_get_settings(&cs)
	s := Settings{
		MasterKeyID:      C.GoString(cs.master_key_id),
		RequestTimeout:   time.Duration(cs.request_timeout) * time.Millisecond,
		Region:           C.GoString(cs.region),
		EndpointURL:      C.GoString(cs.endpoint_url),
		KeyfileDir:       C.GoString(cs.keyfile_dir),
		RecoveryBundle:   C.GoString(cs.recovery_bundle),
		RecoveryIdentity: C.GoString(cs.recovery_identity),
		Mock:             cs.mock > 0,
	}
	if cs.mock_faults != nil {
		s.MockFaults = C.GoString(cs.mock_faults)
	}
	if err := plugin.Init(s); err != nil {
		Log{}.Error(err.Error())
		return 1
	}
	return 0
}

//export akmGoDeinit
func akmGoDeinit() (ret C.int) {
	defer recovered("plugin deinit", func() { ret = 0 })
	if plugin != nil {
		plugin.Deinit()
	}
	return 0
}

//export akmGoGetLatestKeyVersion
func akmGoGetLatestKeyVersion(id C.uint) (ret C.uint) {
	defer recovered("get_latest_key_version", func() { ret = versionInvalid })
	return C.uint(plugin.LatestKeyVersion(uint32(id)))
}

//export akmGoGetKey
func akmGoGetKey(id, version C.uint, key *C.uchar, keyLength *C.uint) (ret C.uint) {
	defer recovered("get_key", func() { ret = versionInvalid })
	if keyLength == nil {
		return versionInvalid
	}
	var dst []byte
	if key != nil && *keyLength > 0 {
		dst = unsafe.Slice((*byte)(unsafe.Pointer(key)), int(*keyLength))
	}
	n, code := plugin.GetKey(uint32(id), uint32(version), dst)
	if code == 0 || C.uint(code) == bufferTooSmall {
		*keyLength = C.uint(n)
	}
	return C.uint(code)
}

// Status is what Go contributes to SHOW GLOBAL STATUS (struct
// akm_status in cabi.h; the key cache adds its fill).
type Status struct {
	KeysLoaded, VersionsLoaded, VersionsFailed                        int64
	DecryptCalls, DecryptErrors, DecryptRetries, DecryptThrottled     int64
	GenerateCalls, GenerateErrors, GenerateRetries, GenerateThrottled int64
	LastKMSSuccess, LastKMSFailure                                    int64 // Unix seconds, 0 = never
	StartUnwrapMillis, StartVersions, StartFailed                     int64
}

//export akmGoStatus
func akmGoStatus(out *C.struct_akm_status) {
	defer recovered("SHOW STATUS", func() {})
	s := plugin.Status()
	out.keys_loaded, out.versions_loaded, out.versions_failed = C.longlong(s.KeysLoaded), C.longlong(s.VersionsLoaded), C.longlong(s.VersionsFailed)
	out.decrypt_calls, out.decrypt_errors = C.longlong(s.DecryptCalls), C.longlong(s.DecryptErrors)
	out.decrypt_retries, out.decrypt_throttled = C.longlong(s.DecryptRetries), C.longlong(s.DecryptThrottled)
	out.generate_calls, out.generate_errors = C.longlong(s.GenerateCalls), C.longlong(s.GenerateErrors)
	out.generate_retries, out.generate_throttled = C.longlong(s.GenerateRetries), C.longlong(s.GenerateThrottled)
	out.last_kms_success, out.last_kms_failure = C.longlong(s.LastKMSSuccess), C.longlong(s.LastKMSFailure)
	out.start_unwrap_ms, out.start_versions, out.start_failed = C.longlong(s.StartUnwrapMillis), C.longlong(s.StartVersions), C.longlong(s.StartFailed)
}

//export akmGoRotateKey
func akmGoRotateKey(n C.int) {
	defer recovered("rotate_key", func() {})
	plugin.Rotate(int(n))
}

//export akmGoSetMasterKeyID
func akmGoSetMasterKeyID(id *C.char) {
	defer recovered("master_key_id update", func() {})
	plugin.SetMasterKeyID(C.GoString(id))
}

//export akmGoMockFaults
func akmGoMockFaults(spec *C.char, n C.int, apply C.int) (ret C.int) {
	defer recovered("mock_faults", func() { ret = 1 })
	err := plugin.MockFaults(C.GoStringN(spec, n), apply != 0)
	if err != nil {
		Log{}.ClientWarning("aws_key_management_mock_faults: " + err.Error())
		return 1
	}
	return 0
}
