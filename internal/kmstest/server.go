package kmstest

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/mock"
)

// Defaults used where Config leaves a field empty. The credentials are the
// placeholders of the AWS documentation: they open nothing real.
const (
	DefaultRegion          = "us-east-1"
	DefaultAccountID       = "111122223333"
	DefaultAccessKeyID     = "AKIAIOSFODNN7EXAMPLE"
	DefaultSecretAccessKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
)

// maxBody bounds a request body; real KMS requests are far smaller.
const maxBody = 1 << 20

// Config sets up a Server. Empty fields take the Default* values; an
// empty Seed means a random one (blobs then die with the server).
type Config struct {
	Region, AccountID, AccessKeyID, SecretAccessKey, SessionToken string
	// Seed derives each CMK's material: HMAC-SHA256(Seed, key id). A
	// restarted emulator with the same seed (and the same key ids) opens
	// blobs made by the old one.
	Seed []byte
	// MFADevices maps MFA serial numbers (device ARNs) to the one
	// six-digit code GetSessionToken accepts for each.
	MFADevices map[string]string
	// RequireMFA starts the emulator with SetRequireMFA(true).
	RequireMFA bool
	// Log, if set, gets one line per request: time, operation, resolved
	// key id, HTTP status and exception. Never blobs, plaintext,
	// signatures or secrets.
	Log io.Writer
}

type credSet struct {
	akid, secret, token string
}

// Server is the emulator: an http.Handler. Its methods are safe for
// concurrent use.
type Server struct {
	seed    []byte
	account string
	now     func() time.Time

	logMu sync.Mutex
	log   io.Writer

	closeOnce sync.Once
	closed    chan struct{}

	mu         sync.Mutex
	region     string
	creds      credSet
	keys       map[string]*cmk
	keyOrder   []string
	aliases    map[string]*alias
	aliasOrder []string
	faults     *mock.Faults
	faultSpec  string
	calls      map[string]int
	mfaDevices map[string]string   // serial -> code
	sessions   map[string]*session // by access key id
	requireMFA bool
	// The quota (quota.go): its bucket and counters.
	limits              Limits
	tokens              float64
	filled              time.Time
	requests, throttled int
}

type cmk struct {
	id          string
	created     time.Time
	enabled     bool
	description string
	aead        cipher.AEAD
}

type alias struct {
	name    string // alias/...
	target  string // key id
	created time.Time
	updated time.Time
}

// New returns an emulator with no keys and no faults.
func New(cfg Config) *Server {
	s := &Server{
		seed:    append([]byte(nil), cfg.Seed...),
		account: cfg.AccountID,
		now:     time.Now,
		log:     cfg.Log,
		closed:  make(chan struct{}),
		region:  cfg.Region,
		keys:    make(map[string]*cmk),
		aliases: make(map[string]*alias),
		faults:  &mock.Faults{},
		calls:   make(map[string]int),

		mfaDevices: make(map[string]string),
		sessions:   make(map[string]*session),
		requireMFA: cfg.RequireMFA,
	}
	for serial, code := range cfg.MFADevices {
		if err := s.SetMFADevice(serial, code); err != nil {
			panic("kmstest: " + err.Error())
		}
	}
	if len(s.seed) == 0 {
		s.seed = make([]byte, 32)
		if _, err := rand.Read(s.seed); err != nil {
			panic("kmstest: random seed: " + err.Error())
		}
	}
	if s.account == "" {
		s.account = DefaultAccountID
	}
	if s.region == "" {
		s.region = DefaultRegion
	}
	s.creds = credSet{cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken}
	if s.creds.akid == "" {
		s.creds.akid = DefaultAccessKeyID
	}
	if s.creds.secret == "" {
		s.creds.secret = DefaultSecretAccessKey
	}
	return s
}

// Start runs a new emulator on an httptest server listening on
// 127.0.0.1 (never another address) and returns it with its URL, for Go
// tests. Close the httptest server when done; Server.Close first cuts
// injected delays still running.
func Start(cfg Config) (*Server, *httptest.Server, string) {
	s := New(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("kmstest: listen on 127.0.0.1: " + err.Error())
	}
	ts := httptest.NewUnstartedServer(s)
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	return s, ts, ts.URL
}

// Close ends injected delays still running (they answer
// ServiceUnavailableException) so the HTTP server can stop at once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// CreateKey makes a symmetric CMK with that id (a random UUID if id is
// empty) and points the given aliases ("alias/x" or just "x") at it,
// moving them if they exist. If the key exists it only adds the aliases.
// It returns the key ARN and panics on an invalid id or alias name: it is
// for test setup.
func (s *Server) CreateKey(id string, aliases ...string) (arn string) {
	arn, err := s.createKey(id, aliases)
	if err != nil {
		panic("kmstest: CreateKey: " + err.Error())
	}
	return arn
}

func (s *Server) createKey(id string, aliases []string) (string, error) {
	if id == "" {
		id = newUUID()
	}
	if err := validKeyID(id); err != nil {
		return "", err
	}
	names := make([]string, 0, len(aliases))
	for _, a := range aliases {
		if !strings.HasPrefix(a, "alias/") {
			a = "alias/" + a
		}
		if !validAliasName(a) {
			return "", fmt.Errorf("invalid alias name %q", a)
		}
		names = append(names, a)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[id]; !ok {
		s.addKeyLocked(id, "", now)
	}
	for _, n := range names {
		if a, ok := s.aliases[n]; ok {
			a.target, a.updated = id, now
			continue
		}
		s.aliases[n] = &alias{name: n, target: id, created: now, updated: now}
		s.aliasOrder = append(s.aliasOrder, n)
	}
	return s.keyARNLocked(id), nil
}

func (s *Server) addKeyLocked(id, description string, now time.Time) *cmk {
	k := &cmk{id: id, created: now, enabled: true, description: description, aead: material(s.seed, id)}
	s.keys[id] = k
	s.keyOrder = append(s.keyOrder, id)
	return k
}

// validKeyID accepts what fits a blob header and cannot be taken for an
// ARN or alias: 1 to 255 of [A-Za-z0-9._-]. CreateKey over the API makes
// UUIDs; setup may choose readable ids.
func validKeyID(id string) error {
	if len(id) == 0 || len(id) > 255 {
		return fmt.Errorf("key id must have 1 to 255 characters")
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("key id %q: only letters, digits, '.', '_' and '-'", id)
		}
	}
	return nil
}

func validAliasName(n string) bool {
	if len(n) <= len("alias/") || len(n) > 256 || !strings.HasPrefix(n, "alias/") {
		return false
	}
	for _, c := range []byte(n) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/' || c == ':') {
			return false
		}
	}
	return true
}

func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("kmstest: random: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Calls returns a copy of the per-operation call counts (failed calls
// included), keyed by the operation named in X-Amz-Target.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		m[k] = v
	}
	return m
}

// ResetCalls sets every call count back to zero, the quota's too.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	s.calls = make(map[string]int)
	s.requests, s.throttled = 0, 0
	s.mu.Unlock()
}

// SetFaults replaces the injected faults with spec, in internal/mock's
// fault language (see mock.ParseFaults), where Op may be any KMS
// operation name or *:
//
//	fail=<Op>:<Exception>[:<count>]  Op fails count times (default: for good);
//	                                 Exception DropConnection closes the
//	                                 connection without an answer
//	delay=<Op>:<milliseconds>        Op answers that much later (the
//	                                 client's cancellation cuts it short)
//	datakey=<hex>                    new data keys have this plaintext
//	                                 (zero-padded or cut to the size asked)
//	disable=<key id>                 the key acts as disabled
//
// An empty spec clears all faults; counters start again.
func (s *Server) SetFaults(spec string) error {
	f, err := parseFaults(spec)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.faults, s.faultSpec = f, spec
	s.mu.Unlock()
	return nil
}

// SetCredentials replaces the one credential set the emulator accepts.
// An empty token means requests must carry none.
func (s *Server) SetCredentials(akid, secret, token string) {
	s.mu.Lock()
	s.creds = credSet{akid, secret, token}
	s.mu.Unlock()
}

// SetRegion changes the emulator's region: the credential scope it
// accepts and the region in every ARN. Keys and blobs stay valid.
func (s *Server) SetRegion(r string) {
	s.mu.Lock()
	s.region = r
	s.mu.Unlock()
}

// Region returns the emulator's region.
func (s *Server) Region() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.region
}

func (s *Server) keyARNLocked(id string) string {
	return "arn:aws:kms:" + s.region + ":" + s.account + ":key/" + id
}

func (s *Server) aliasARNLocked(name string) string {
	return "arn:aws:kms:" + s.region + ":" + s.account + ":" + name
}

// apiError is a KMS exception as sent on the wire.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// errDrop asks ServeHTTP to close the connection without an answer.
var errDrop = &apiError{code: "DropConnection"}

func newError(code, format string, a ...any) *apiError {
	msg := format
	if len(a) > 0 {
		msg = fmt.Sprintf(format, a...)
	}
	return &apiError{status: statusFor(code), code: code, message: msg}
}

// statusFor is the HTTP status KMS sends with an exception: 500 for its
// internal failures, 503 when unavailable, 400 for everything else
// (throttling included).
func statusFor(code string) int {
	switch code {
	case "KMSInternalException", "DependencyTimeoutException", "InternalFailure", "InternalFailureException":
		return http.StatusInternalServerError
	case "ServiceUnavailable", "ServiceUnavailableException":
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// reqInfo is what the log line tells about one request.
type reqInfo struct {
	op    string
	keyID string
}

// ServeHTTP answers KMS requests on "/" and control requests under
// "/_emulator/".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	if strings.HasPrefix(r.URL.Path, "/_emulator/") {
		status := s.control(w, r)
		s.logLine(start, "_emulator"+strings.TrimPrefix(r.URL.Path, "/_emulator"), "", status, "")
		return
	}
	info := &reqInfo{}
	if isSTS(r) {
		status, code := s.serveSTS(w, r, info)
		s.logLine(start, info.op, "", status, code)
		return
	}
	if svc, op, ok := strings.Cut(r.Header.Get("X-Amz-Target"), "."); ok && svc == "TrentService" && op != "" {
		info.op = op
		s.mu.Lock()
		s.calls[op]++
		s.mu.Unlock()
	}
	out, aerr := s.handle(r, info)
	switch {
	case aerr == errDrop:
		s.drop(w)
		s.logLine(start, info.op, info.keyID, 0, "DropConnection")
		return
	case aerr != nil && aerr.status == 0: // client went away
		s.logLine(start, info.op, info.keyID, 0, aerr.code)
		return
	case aerr != nil:
		body := map[string]string{"__type": aerr.code}
		if aerr.message != "" {
			body["message"] = aerr.message
		}
		writeJSON(w, aerr.status, body)
		s.logLine(start, info.op, info.keyID, aerr.status, aerr.code)
		return
	}
	writeJSON(w, http.StatusOK, out)
	s.logLine(start, info.op, info.keyID, http.StatusOK, "")
}

func (s *Server) handle(r *http.Request, info *reqInfo) (any, *apiError) {
	if r.URL.Path != "/" {
		return nil, &apiError{status: http.StatusNotFound, code: "UnknownOperationException", message: "no KMS API at " + r.URL.Path}
	}
	if r.Method != http.MethodPost {
		return nil, &apiError{status: http.StatusMethodNotAllowed, code: "UnknownOperationException", message: "KMS takes POST"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: "RequestEntityTooLargeException", message: "Request body is too large."}
		}
		return nil, &apiError{code: "RequestCanceled", message: err.Error()}
	}
	who, aerr := s.verify(r, body, "kms")
	if aerr != nil {
		return nil, aerr
	}
	h, ok := operations[info.op]
	if !ok {
		return nil, newError("UnknownOperationException", "")
	}
	if aerr := s.policyDenies(who, info.op); aerr != nil {
		return nil, aerr
	}
	s.mu.Lock()
	if !s.admit() {
		s.mu.Unlock()
		return nil, newError("ThrottlingException", "Rate exceeded.")
	}
	delay := s.faults.DelayFor(info.op) + s.limits.Latency
	fail := s.faults.Take(info.op)
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return nil, &apiError{code: "RequestCanceled"}
		case <-s.closed:
			t.Stop()
			return nil, newError("ServiceUnavailableException", "The emulator is shutting down.")
		}
	}
	if fail != nil {
		var me *mock.Error
		if !errors.As(fail, &me) {
			return nil, newError("KMSInternalException", "%v", fail)
		}
		if me.Code == "DropConnection" {
			return nil, errDrop
		}
		return nil, newError(me.Code, "%s", me.Message)
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	return h(s, info, body)
}

// drop closes the connection without an answer, as a crashed or
// partitioned endpoint would.
func (s *Server) drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // net/http closes the stream
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b []byte
	if v != nil {
		var err error
		if b, err = json.Marshal(v); err != nil {
			status = http.StatusInternalServerError
			b = []byte(`{"__type":"KMSInternalException","message":"emulator: cannot encode response"}`)
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("X-Amzn-Requestid", newUUID())
	w.WriteHeader(status)
	w.Write(b)
}

// logLine writes one request's line. op comes from a request header, so
// it is cut to a safe alphabet.
func (s *Server) logLine(start time.Time, op, keyID string, status int, exception string) {
	if s.log == nil {
		return
	}
	dash := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	st := "-"
	if status != 0 {
		st = fmt.Sprint(status)
	}
	line := fmt.Sprintf("%s op=%s key=%s status=%s error=%s dur=%s\n",
		start.UTC().Format("2006-01-02T15:04:05.000Z"), dash(safe(op)), dash(safe(keyID)), st, dash(safe(exception)),
		s.now().Sub(start).Round(time.Microsecond))
	s.logMu.Lock()
	io.WriteString(s.log, line)
	s.logMu.Unlock()
}

func safe(v string) string {
	if len(v) > 80 {
		v = v[:80]
	}
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:", c) {
			return c
		}
		return '?'
	}, v)
}
