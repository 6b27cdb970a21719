package kmsbackend_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/mariadb-go/aws_key_management/internal/keys"
	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
	"github.com/mariadb-go/aws_key_management/internal/kmserr"
)

// The backend must satisfy what the key manager needs.
var _ keys.KMS = (*kmsbackend.Client)(nil)

func TestNormalizeEndpoint(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"   ", ""},
		{"kms.example.com", "https://kms.example.com"},
		{"kms.eu-west-1.amazonaws.com:443", "https://kms.eu-west-1.amazonaws.com:443"},
		{"http://127.0.0.1:4000", "http://127.0.0.1:4000"},
		{"https://x", "https://x"},
		{"  kms.example.com\t", "https://kms.example.com"},
		{" http://127.0.0.1:4000/ \n", "http://127.0.0.1:4000/"},
	}
	for _, tc := range tests {
		if got := kmsbackend.NormalizeEndpoint(tc.in); got != tc.want {
			t.Errorf("NormalizeEndpoint(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// fakeAPI implements kmsbackend.API and records what it was given.
type fakeAPI struct {
	mu       sync.Mutex
	genIn    []*kms.GenerateDataKeyWithoutPlaintextInput
	decIn    []*kms.DecryptInput
	deadline time.Time // of the last call's context
	hasDL    bool

	genOut *kms.GenerateDataKeyWithoutPlaintextOutput
	decOut *kms.DecryptOutput
	err    error
	block  bool // wait for the context to end
}

func (f *fakeAPI) record(ctx context.Context) (error, bool) {
	f.deadline, f.hasDL = ctx.Deadline()
	return f.err, f.block
}

func (f *fakeAPI) GenerateDataKeyWithoutPlaintext(ctx context.Context, in *kms.GenerateDataKeyWithoutPlaintextInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyWithoutPlaintextOutput, error) {
	f.mu.Lock()
	f.genIn = append(f.genIn, in)
	err, block := f.record(ctx)
	out := f.genOut
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, fmt.Errorf("operation error KMS: GenerateDataKeyWithoutPlaintext: %w", ctx.Err())
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (f *fakeAPI) Decrypt(ctx context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	f.mu.Lock()
	f.decIn = append(f.decIn, in)
	err, block := f.record(ctx)
	out := f.decOut
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, fmt.Errorf("operation error KMS: Decrypt: %w", ctx.Err())
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func TestNewWithAPIGenerate(t *testing.T) {
	for _, spec := range []string{"AES_128", "AES_256"} {
		t.Run(spec, func(t *testing.T) {
			blob := []byte("wrapped blob")
			f := &fakeAPI{genOut: &kms.GenerateDataKeyWithoutPlaintextOutput{CiphertextBlob: blob, KeyId: aws.String("arn:k")}}
			c := kmsbackend.NewWithAPI(f, time.Second)
			start := time.Now()
			got, err := c.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/mariadb", spec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, blob) {
				t.Errorf("blob = %q, want %q", got, blob)
			}
			if len(f.genIn) != 1 || len(f.decIn) != 0 {
				t.Fatalf("calls: generate %d, decrypt %d", len(f.genIn), len(f.decIn))
			}
			in := f.genIn[0]
			if aws.ToString(in.KeyId) != "alias/mariadb" || in.KeySpec != types.DataKeySpec(spec) {
				t.Errorf("input KeyId %q, KeySpec %q", aws.ToString(in.KeyId), in.KeySpec)
			}
			if in.NumberOfBytes != nil || in.EncryptionContext != nil || in.GrantTokens != nil || in.DryRun != nil {
				t.Errorf("unexpected fields in %+v", in)
			}
			// With no deadline of its own the call gets 3*attempt + 5s.
			if !f.hasDL {
				t.Fatal("the API call had no deadline")
			}
			if d := f.deadline.Sub(start); d < 7*time.Second || d > 9*time.Second {
				t.Errorf("deadline %v after the call, want about 8s", d)
			}
		})
	}
}

func TestNewWithAPIGenerateEmptyBlob(t *testing.T) {
	for _, blob := range [][]byte{nil, {}} {
		f := &fakeAPI{genOut: &kms.GenerateDataKeyWithoutPlaintextOutput{CiphertextBlob: blob}}
		c := kmsbackend.NewWithAPI(f, time.Second)
		got, err := c.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/k", "AES_128")
		if err == nil || got != nil {
			t.Fatalf("Generate = %q, %v; want an error", got, err)
		}
		if !strings.Contains(err.Error(), "empty CiphertextBlob") || !strings.Contains(err.Error(), "GenerateDataKeyWithoutPlaintext") {
			t.Errorf("error %q does not say what is wrong", err)
		}
	}
}

func TestNewWithAPIDecrypt(t *testing.T) {
	blob := []byte{0x01, 0x02, 0x00, 0xff}
	pt := []byte("0123456789abcdef")
	f := &fakeAPI{decOut: &kms.DecryptOutput{Plaintext: bytes.Clone(pt), KeyId: aws.String("arn:k")}}
	c := kmsbackend.NewWithAPI(f, 2*time.Second)
	start := time.Now()
	got, err := decrypt(c, context.Background(), blob)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pt) {
		t.Errorf("plaintext = %x, want %x", got, pt)
	}
	if !bytes.Equal(f.decOut.Plaintext, make([]byte, len(pt))) {
		t.Errorf("the SDK's copy of the key was not wiped")
	}
	if len(f.decIn) != 1 || len(f.genIn) != 0 {
		t.Fatalf("calls: decrypt %d, generate %d", len(f.decIn), len(f.genIn))
	}
	in := f.decIn[0]
	if !bytes.Equal(in.CiphertextBlob, blob) {
		t.Errorf("CiphertextBlob = %x, want %x", in.CiphertextBlob, blob)
	}
	if in.KeyId != nil || in.EncryptionAlgorithm != "" || in.EncryptionContext != nil || in.GrantTokens != nil || in.Recipient != nil || in.DryRun != nil {
		t.Errorf("Decrypt sent more than the blob: %+v", in)
	}
	if d := f.deadline.Sub(start); !f.hasDL || d < 10*time.Second || d > 12*time.Second {
		t.Errorf("deadline %v (set %v), want about 11s", d, f.hasDL)
	}
}

// plainErr is an error type of our own.
type plainErr struct{ s string }

func (e *plainErr) Error() string { return e.s }

func TestNewWithAPIErrorsWrapped(t *testing.T) {
	disabled := &types.DisabledException{Message: aws.String("arn:k is disabled.")}
	notFound := &types.NotFoundException{Message: aws.String("Key 'arn:k' does not exist")}
	plain := &plainErr{"connection reset by peer"}
	for _, orig := range []error{disabled, notFound, plain} {
		f := &fakeAPI{err: orig}
		c := kmsbackend.NewWithAPI(f, time.Second)
		_, genErr := c.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/k", "AES_128")
		_, decErr := decrypt(c, context.Background(), []byte("blob"))
		for op, err := range map[string]error{"KMS Client API 'GenerateDataKeyWithoutPlaintext' failed": genErr, "KMS Client API 'Decrypt' failed": decErr} {
			if err == nil {
				t.Fatalf("%T: no error", orig)
			}
			if !errors.Is(err, orig) {
				t.Errorf("%v does not wrap %T", err, orig)
			}
			if !strings.Contains(err.Error(), op) {
				t.Errorf("error %q does not name the operation (%q)", err, op)
			}
			switch want := orig.(type) {
			case *types.DisabledException:
				var got *types.DisabledException
				if !errors.As(err, &got) || got != want {
					t.Errorf("errors.As(*types.DisabledException) failed for %v", err)
				}
			case *plainErr:
				var got *plainErr
				if !errors.As(err, &got) || got != want {
					t.Errorf("errors.As(*plainErr) failed for %v", err)
				}
			}
		}
	}
	// The error reads as the C++ plugin's line (after its "AWS KMS
	// plugin : " prefix), the exception found through the wrapping.
	f := &fakeAPI{err: disabled}
	_, err := decrypt(kmsbackend.NewWithAPI(f, time.Second), context.Background(), []byte("b"))
	if want := "KMS Client API 'Decrypt' failed : DisabledException - arn:k is disabled."; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
	var ke *kmserr.Error
	if !errors.As(err, &ke) || ke.Transient() {
		t.Errorf("%v: want a *kmserr.Error, not transient", err)
	}
}

func TestNewWithAPIParentDeadline(t *testing.T) {
	// A huge attempt timeout: only the caller's deadline can end the call.
	c := kmsbackend.NewWithAPI(&fakeAPI{block: true}, time.Hour)
	ops := map[string]func(context.Context) ([]byte, error){
		"Generate": func(ctx context.Context) ([]byte, error) {
			return c.GenerateDataKeyWithoutPlaintext(ctx, "alias/k", "AES_128")
		},
		"Decrypt": func(ctx context.Context) ([]byte, error) { return decrypt(c, ctx, []byte("b")) },
	}
	for name, call := range ops {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			out, err := call(ctx)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("returned after %v with a 50ms deadline", d)
			}
			if out != nil || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("got %q, %v; want an error wrapping context.DeadlineExceeded", out, err)
			}
			var ke *kmserr.Error
			if !errors.As(err, &ke) || ke.Code != kmserr.CodeTimeout || !ke.Transient() {
				t.Errorf("%v: want a *kmserr.Error with code RequestTimeout, transient", err)
			}
			if want := "KMS Client API '" + map[string]string{"Generate": "GenerateDataKeyWithoutPlaintext", "Decrypt": "Decrypt"}[name] + "' failed : RequestTimeout - "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want it to start with %q", err, want)
			}

			ctx, cancel = context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			if _, err := call(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("after cancel: %v, want context.Canceled", err)
			}
		})
	}
}

func TestNewWithAPIKeepsEarlierDeadline(t *testing.T) {
	f := &fakeAPI{decOut: &kms.DecryptOutput{Plaintext: []byte("k")}}
	c := kmsbackend.NewWithAPI(f, time.Hour)
	dl := time.Now().Add(3 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	if _, err := decrypt(c, ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	if !f.hasDL || !f.deadline.Equal(dl) {
		t.Errorf("deadline %v, want the caller's %v", f.deadline, dl)
	}
}

func TestCredentialsFile(t *testing.T) {
	home := t.TempDir()
	homeWithCreds := t.TempDir()
	dataDir := t.TempDir()
	emptyDataDir := t.TempDir()
	for _, p := range []string{filepath.Join(homeWithCreds, ".aws", "credentials"), filepath.Join(dataDir, ".aws", "credentials")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("[default]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A directory where the file should be is not a credentials file.
	homeWithDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(homeWithDir, ".aws", "credentials"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      map[string]string
		dataDir  string
		wantPath string
		wantWhy  string
	}{
		{"shared file variable", map[string]string{"AWS_SHARED_CREDENTIALS_FILE": "/x/creds", "AWS_CREDENTIAL_PROFILES_FILE": "/y", "HOME": homeWithCreds}, dataDir,
			"/x/creds", "AWS_SHARED_CREDENTIALS_FILE"},
		{"C++ SDK variable", map[string]string{"AWS_CREDENTIAL_PROFILES_FILE": "/y/creds", "HOME": homeWithCreds}, dataDir,
			"/y/creds", "AWS_CREDENTIAL_PROFILES_FILE"},
		{"home", map[string]string{"HOME": homeWithCreds}, dataDir,
			filepath.Join(homeWithCreds, ".aws", "credentials"), "home directory"},
		{"datadir", map[string]string{"HOME": home}, dataDir,
			filepath.Join(dataDir, ".aws", "credentials"), "datadir"},
		{"directory is no file", map[string]string{"HOME": homeWithDir}, emptyDataDir, "", ""},
		{"none", map[string]string{"HOME": home}, emptyDataDir, "", ""},
		{"no datadir", map[string]string{"HOME": home}, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			path, why := kmsbackend.CredentialsFile(getenv, tc.dataDir)
			if path != tc.wantPath || why != tc.wantWhy {
				t.Errorf("CredentialsFile = %q, %q; want %q, %q", path, why, tc.wantPath, tc.wantWhy)
			}
		})
	}
}

// ---- New() against a local KMS endpoint ----

// unsetenv unsets k for the rest of the test (t.Setenv restores it).
func unsetenv(t *testing.T, k string) {
	t.Helper()
	t.Setenv(k, "")
	os.Unsetenv(k)
}

// awsEnv gives the SDK static credentials and region eu-west-1, and keeps
// it away from the host's files, instance metadata and settings.
func awsEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_DEFAULT_REGION",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
		"AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_NEW_RETRIES_2026", "AWS_CA_BUNDLE",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT",
		"AWS_CREDENTIAL_PROFILES_FILE", "AWS_SDK_UA_APP_ID",
	} {
		unsetenv(t, k)
	}
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTESTTESTTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-do-not-log")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	t.Setenv("NO_PROXY", "127.0.0.1,localhost")
	t.Setenv("no_proxy", "127.0.0.1,localhost")
}

// request is what the local KMS received.
type request struct {
	method, target, contentType, auth string
	body                              map[string]any
}

// kmsServer is a local endpoint speaking enough of KMS's JSON 1.1 protocol.
type kmsServer struct {
	*httptest.Server
	n    atomic.Int32
	mu   sync.Mutex
	reqs []request
	// reply answers request number n (1-based).
	reply func(n int, r request, w http.ResponseWriter)
}

func newKMSServer(t *testing.T, reply func(n int, r request, w http.ResponseWriter)) *kmsServer {
	t.Helper()
	s := &kmsServer{reply: reply}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		raw, _ := io.ReadAll(hr.Body)
		r := request{
			method:      hr.Method,
			target:      hr.Header.Get("X-Amz-Target"),
			contentType: hr.Header.Get("Content-Type"),
			auth:        hr.Header.Get("Authorization"),
		}
		_ = json.Unmarshal(raw, &r.body)
		s.mu.Lock()
		s.reqs = append(s.reqs, r)
		s.mu.Unlock()
		s.reply(int(s.n.Add(1)), r, w)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *kmsServer) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", "req-1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// logLines collects the client's request log.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() *kmsbackend.Logger {
	return &kmsbackend.Logger{
		Level: func() kmsbackend.LogLevel { return kmsbackend.LogTrace },
		Print: func(level kmsbackend.LogLevel, msg string) {
			l.mu.Lock()
			l.lines = append(l.lines, msg)
			l.mu.Unlock()
		},
	}
}

func (l *logLines) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func newClient(t *testing.T, endpoint string, log *kmsbackend.Logger) *kmsbackend.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := kmsbackend.New(ctx, kmsbackend.Config{EndpointURL: endpoint, RequestTimeout: 5 * time.Second, Log: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNewDecryptEndToEnd(t *testing.T) {
	awsEnv(t)
	blob := []byte("\x01\x02\x03 ciphertext blob")
	pt := []byte("0123456789abcdef0123456789abcdef")
	srv := newKMSServer(t, func(_ int, r request, w http.ResponseWriter) {
		if r.target != "TrentService.Decrypt" {
			writeJSON(w, 400, map[string]string{"__type": "UnknownOperationException", "message": r.target})
			return
		}
		writeJSON(w, 200, map[string]string{"Plaintext": base64.StdEncoding.EncodeToString(pt), "KeyId": "k"})
	})
	var log logLines
	c := newClient(t, srv.URL, log.logger())
	if !strings.Contains(c.Description, srv.URL) || !strings.Contains(c.Description, "region eu-west-1 ") {
		t.Errorf("Description %q does not name the endpoint and the region of AWS_REGION", c.Description)
	}
	got, err := decrypt(c, callCtx(t), blob)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(got, pt) {
		t.Errorf("plaintext = %x, want %x", got, pt)
	}
	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.contentType != "application/x-amz-json-1.1" {
		t.Errorf("request %s with Content-Type %q", r.method, r.contentType)
	}
	if !strings.HasPrefix(r.auth, "AWS4-HMAC-SHA256") ||
		!strings.Contains(r.auth, "Credential=AKIDTESTTESTTEST/") ||
		!strings.Contains(r.auth, "/eu-west-1/kms/aws4_request") {
		t.Errorf("Authorization = %q, want a SigV4 signature for kms in eu-west-1", r.auth)
	}
	if b64, _ := r.body["CiphertextBlob"].(string); b64 != base64.StdEncoding.EncodeToString(blob) {
		t.Errorf("CiphertextBlob sent = %q", b64)
	}
	if _, ok := r.body["KeyId"]; ok || len(r.body) != 1 {
		t.Errorf("request body %v, want only CiphertextBlob", r.body)
	}
	// Request logging: the outcome, never keys, blobs or signatures.
	lines := log.all()
	if !strings.Contains(lines, "KMS Decrypt succeeded after 1 attempt(s)") {
		t.Errorf("log lacks the outcome:\n%s", lines)
	}
	for _, secret := range []string{base64.StdEncoding.EncodeToString(pt), string(pt), base64.StdEncoding.EncodeToString(blob), "AWS4-HMAC", "test-secret-do-not-log", "Signature="} {
		if strings.Contains(lines, secret) {
			t.Errorf("log contains %q:\n%s", secret, lines)
		}
	}
}

func TestNewGenerateEndToEnd(t *testing.T) {
	awsEnv(t)
	blob := []byte("new wrapped key")
	srv := newKMSServer(t, func(_ int, r request, w http.ResponseWriter) {
		if r.target != "TrentService.GenerateDataKeyWithoutPlaintext" {
			writeJSON(w, 400, map[string]string{"__type": "UnknownOperationException", "message": r.target})
			return
		}
		writeJSON(w, 200, map[string]string{"CiphertextBlob": base64.StdEncoding.EncodeToString(blob), "KeyId": "arn:k"})
	})
	c := newClient(t, srv.URL, nil)
	got, err := c.GenerateDataKeyWithoutPlaintext(callCtx(t), "alias/mariadb", "AES_256")
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if !bytes.Equal(got, blob) {
		t.Errorf("blob = %q, want %q", got, blob)
	}
	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	if reqs[0].body["KeyId"] != "alias/mariadb" || reqs[0].body["KeySpec"] != "AES_256" || len(reqs[0].body) != 2 {
		t.Errorf("request body %v, want KeyId and KeySpec only", reqs[0].body)
	}
}

func TestNewRetriesServerErrors(t *testing.T) {
	awsEnv(t)
	srv := newKMSServer(t, func(_ int, _ request, w http.ResponseWriter) {
		writeJSON(w, 500, map[string]string{"__type": "KMSInternalException", "message": "internal"})
	})
	var log logLines
	c := newClient(t, srv.URL, log.logger())
	_, err := decrypt(c, callCtx(t), []byte("blob"))
	if err == nil {
		t.Fatal("Decrypt succeeded against a failing server")
	}
	if n := srv.n.Load(); n != kmsbackend.MaxAttempts {
		t.Errorf("%d requests, want %d", n, kmsbackend.MaxAttempts)
	}
	var coded interface{ ErrorCode() string }
	if !errors.As(err, &coded) || coded.ErrorCode() != "KMSInternalException" {
		t.Errorf("error %v has no KMSInternalException code", err)
	}
	if lines := log.all(); !strings.Contains(lines, "KMS Decrypt failed after 3 attempt(s)") {
		t.Errorf("log lacks the failure:\n%s", lines)
	}
}

func TestNewRetryThenSuccess(t *testing.T) {
	awsEnv(t)
	srv := newKMSServer(t, func(n int, _ request, w http.ResponseWriter) {
		if n == 1 {
			writeJSON(w, 503, map[string]string{"__type": "ServiceUnavailable", "message": "busy"})
			return
		}
		writeJSON(w, 200, map[string]string{"Plaintext": base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))})
	})
	c := newClient(t, srv.URL, nil)
	got, err := decrypt(c, callCtx(t), []byte("blob"))
	if err != nil || string(got) != "0123456789abcdef" {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}
	if n := srv.n.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestNewClientErrorNotRetried(t *testing.T) {
	awsEnv(t)
	srv := newKMSServer(t, func(_ int, _ request, w http.ResponseWriter) {
		writeJSON(w, 400, map[string]string{"__type": "DisabledException", "message": "x"})
	})
	c := newClient(t, srv.URL, nil)
	_, err := decrypt(c, callCtx(t), []byte("blob"))
	if err == nil {
		t.Fatal("no error")
	}
	if n := srv.n.Load(); n != 1 {
		t.Errorf("%d requests, want 1 (a client error is not retried)", n)
	}
	var coded interface{ ErrorCode() string }
	if !errors.As(err, &coded) || coded.ErrorCode() != "DisabledException" {
		t.Fatalf("error %v (%T) has no DisabledException code", err, err)
	}
	var typed *types.DisabledException
	if !errors.As(err, &typed) || aws.ToString(typed.Message) != "x" {
		t.Errorf("errors.As(*types.DisabledException) failed for %v", err)
	}
	if want := "KMS Client API 'Decrypt' failed : DisabledException - x"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
}

func TestNewAttemptTimeout(t *testing.T) {
	awsEnv(t)
	srv := newKMSServer(t, func(_ int, _ request, w http.ResponseWriter) {
		time.Sleep(time.Second) // longer than the attempt timeout
		writeJSON(w, 200, map[string]string{"Plaintext": base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := kmsbackend.New(ctx, kmsbackend.Config{EndpointURL: srv.URL, RequestTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = decrypt(c, callCtx(t), []byte("blob"))
	if err == nil {
		t.Fatal("Decrypt succeeded although every attempt timed out")
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v", d)
	}
	if n := srv.n.Load(); n != kmsbackend.MaxAttempts {
		t.Errorf("%d requests, want %d (timeouts are retried)", n, kmsbackend.MaxAttempts)
	}
}

// The region is the variable's, else the SDK's configuration (the
// environment, then the config file), else us-east-1: what the client
// says in Description and what it signs requests for, as the server sees
// it in the credential scope.
func TestNewRegion(t *testing.T) {
	tests := []struct {
		name, variable string
		setup          func(t *testing.T)
		want           string
	}{
		{"default", "", func(t *testing.T) {
			unsetenv(t, "AWS_REGION")
			unsetenv(t, "AWS_DEFAULT_REGION")
		}, kmsbackend.DefaultRegion},
		{"environment", "", func(t *testing.T) {}, "eu-west-1"},
		{"variable beats environment", "ap-south-1", func(t *testing.T) {}, "ap-south-1"},
		{"config file", "", func(t *testing.T) {
			unsetenv(t, "AWS_REGION")
			cfg := filepath.Join(t.TempDir(), "config")
			if err := os.WriteFile(cfg, []byte("[default]\nregion = sa-east-1\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_CONFIG_FILE", cfg)
		}, "sa-east-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			awsEnv(t)
			tc.setup(t)
			srv := newKMSServer(t, func(_ int, _ request, w http.ResponseWriter) {
				writeJSON(w, 200, map[string]string{"CiphertextBlob": "AAAA", "KeyId": "arn:k"})
			})
			c, err := kmsbackend.New(context.Background(), kmsbackend.Config{Region: tc.variable, EndpointURL: srv.URL, RequestTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if want := "KMS client for region " + tc.want + " at "; !strings.HasPrefix(c.Description, want) {
				t.Errorf("Description = %q, want it to start with %q", c.Description, want)
			}
			if _, err := c.GenerateDataKeyWithoutPlaintext(callCtx(t), "alias/k", "AES_128"); err != nil {
				t.Fatal(err)
			}
			if reqs := srv.requests(); len(reqs) != 1 || !strings.Contains(reqs[0].auth, "/"+tc.want+"/kms/aws4_request") {
				t.Errorf("requests %+v, want one signed for kms in %s", reqs, tc.want)
			}
		})
	}
	// Without an endpoint override, the region's own endpoint.
	awsEnv(t)
	c, err := kmsbackend.New(context.Background(), kmsbackend.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "KMS client for region eu-west-1 at the region's default endpoint;"; !strings.HasPrefix(c.Description, want) {
		t.Errorf("Description = %q, want it to start with %q", c.Description, want)
	}
}

func TestNewCredentialsFiles(t *testing.T) {
	tests := []struct {
		name string
		// setup places the credentials file and returns the datadir.
		setup   func(t *testing.T, creds []byte) string
		wantWhy string
	}{
		{"AWS_CREDENTIAL_PROFILES_FILE", func(t *testing.T, creds []byte) string {
			p := filepath.Join(t.TempDir(), "creds")
			if err := os.WriteFile(p, creds, 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_CREDENTIAL_PROFILES_FILE", p)
			return ""
		}, "from AWS_CREDENTIAL_PROFILES_FILE"},
		{"datadir", func(t *testing.T, creds []byte) string {
			dataDir := t.TempDir()
			p := filepath.Join(dataDir, ".aws", "credentials")
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, creds, 0o600); err != nil {
				t.Fatal(err)
			}
			return dataDir
		}, "from datadir"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			awsEnv(t)
			unsetenv(t, "AWS_ACCESS_KEY_ID")
			unsetenv(t, "AWS_SECRET_ACCESS_KEY")
			unsetenv(t, "AWS_SHARED_CREDENTIALS_FILE")
			dataDir := tc.setup(t, []byte("[default]\naws_access_key_id = AKIDFROMFILE\naws_secret_access_key = file-secret\n"))
			srv := newKMSServer(t, func(_ int, _ request, w http.ResponseWriter) {
				writeJSON(w, 200, map[string]string{"Plaintext": base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))})
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := kmsbackend.New(ctx, kmsbackend.Config{EndpointURL: srv.URL, DataDir: dataDir, RequestTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(c.Description, tc.wantWhy) {
				t.Errorf("Description %q does not say %q", c.Description, tc.wantWhy)
			}
			if _, err := decrypt(c, callCtx(t), []byte("blob")); err != nil {
				t.Fatal(err)
			}
			reqs := srv.requests()
			if len(reqs) != 1 || !strings.Contains(reqs[0].auth, "Credential=AKIDFROMFILE/") {
				t.Errorf("requests %+v, want one signed with the file's key", reqs)
			}
		})
	}
}

// decrypt is Client.Decrypt with the key returned in a slice of its own.
func decrypt(c *kmsbackend.Client, ctx context.Context, blob []byte) ([]byte, error) {
	dst := make([]byte, keys.MaxKeyLength)
	n, err := c.Decrypt(ctx, blob, dst)
	if err != nil {
		return nil, err
	}
	return dst[:n], nil
}

// The key is read from the raw answer: any member order, whitespace and
// JSON escapes; DecryptWithKeyID reports the key ARN. An answer that is
// not what KMS sends is refused at once, not retried, and named.
func TestNewDecryptAnswers(t *testing.T) {
	pt := []byte("\xfb\xff\xbf0123456789abcdef0123456789abc")
	b64 := base64.StdEncoding.EncodeToString(pt)
	tests := []struct {
		name, body string
		keyID      string // "" with err
		err        string
	}{
		{"KMS's form", `{"KeyId":"arn:aws:kms:eu-west-1:111122223333:key/k1","Plaintext":"` + b64 + `","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}`,
			"arn:aws:kms:eu-west-1:111122223333:key/k1", ""},
		{"reordered, spaced, escaped", "{\n  \"EncryptionAlgorithm\": \"SYMMETRIC_DEFAULT\",\n  \"Plaintext\": \"" + strings.ReplaceAll(b64, "/", `\/`) +
			"\",\n  \"KeyId\": \"arn:aws:kms:eu-west-1:111122223333:key\\/k2\"\n}\n", "arn:aws:kms:eu-west-1:111122223333:key/k2", ""},
		{"no KeyId", `{"Plaintext":"` + b64 + `"}`, "", ""},
		{"no Plaintext", `{"KeyId":"k","CiphertextForRecipient":"AAAA"}`, "",
			"KMS Client API 'Decrypt' failed : InvalidResponse - KMS Decrypt answer refused: no Plaintext in the answer"},
		{"a 48-byte key", `{"Plaintext":"` + base64.StdEncoding.EncodeToString(make([]byte, 48)) + `"}`, "",
			"KMS Client API 'Decrypt' failed : InvalidResponse - KMS Decrypt answer refused: Plaintext holds a key of 48 bytes; at most 32 fit"},
		{"truncated", `{"Plaintext":"` + b64[:20], "",
			"KMS Client API 'Decrypt' failed : InvalidResponse - KMS Decrypt answer refused: not the JSON expected at byte 34: unterminated string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			awsEnv(t)
			srv := newKMSServer(t, func(_ int, _ request, w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				io.WriteString(w, tc.body)
			})
			c := newClient(t, srv.URL, nil)
			dst := make([]byte, keys.MaxKeyLength)
			n, keyID, err := c.DecryptWithKeyID(callCtx(t), []byte("blob"), dst)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v\nwant  %s", err, tc.err)
				}
				var ke *kmserr.Error
				if !errors.As(err, &ke) || ke.Transient() || ke.Code != "InvalidResponse" {
					t.Errorf("error %#v: want a *kmserr.Error, not transient", err)
				}
				if srv.n.Load() != 1 {
					t.Errorf("%d requests: a refused answer was retried", srv.n.Load())
				}
				if !bytes.Equal(dst, make([]byte, len(dst))) {
					t.Errorf("dst not wiped after an error: %x", dst)
				}
				return
			}
			if err != nil || !bytes.Equal(dst[:n], pt) || keyID != tc.keyID {
				t.Fatalf("DecryptWithKeyID = %x, %q, %v; want %x, %q", dst[:n], keyID, err, pt, tc.keyID)
			}
		})
	}
}

// A test double returns the key the SDK's way; the client copies it and
// wipes the double's slice, and passes its KeyId on.
func TestNewWithAPIDecryptWithKeyID(t *testing.T) {
	f := &fakeAPI{decOut: &kms.DecryptOutput{Plaintext: []byte("0123456789abcdef"), KeyId: aws.String("arn:k")}}
	c := kmsbackend.NewWithAPI(f, time.Second)
	dst := make([]byte, 32)
	n, keyID, err := c.DecryptWithKeyID(context.Background(), []byte("b"), dst)
	if err != nil || string(dst[:n]) != "0123456789abcdef" || keyID != "arn:k" {
		t.Fatalf("DecryptWithKeyID = %q, %q, %v", dst[:n], keyID, err)
	}
	if !bytes.Equal(f.decOut.Plaintext, make([]byte, 16)) {
		t.Errorf("the double's copy of the key was not wiped")
	}
}

// KMS (or whatever answers at the endpoint) writes the error message: a
// message with line breaks and terminal escapes, or a huge one, stays on
// one bounded line, in the error the key manager logs and in every
// request log line.
func TestNewErrorMessagesOnOneLine(t *testing.T) {
	for _, tc := range []struct {
		message, want string
	}{
		{"a\nb", `a\nb`},
		{"forged\r\n2026-01-01 0 [ERROR] mariadbd: fake line\u2028\x1b[31m", `forged\r\n2026-01-01 0 [ERROR] mariadbd: fake line\u2028\x1b[31m`},
		{strings.Repeat("x", 20000), strings.Repeat("x", 1024) + "..."},
	} {
		awsEnv(t)
		srv := newKMSServer(t, func(_ int, _ request, w http.ResponseWriter) {
			// With status 400 the SDK does not retry it.
			writeJSON(w, 400, map[string]string{"__type": "KMSInternalException", "message": tc.message})
		})
		var log logLines
		c := newClient(t, srv.URL, log.logger())
		_, err := decrypt(c, callCtx(t), []byte("blob"))
		if want := "KMS Client API 'Decrypt' failed : KMSInternalException - " + tc.want; err == nil || err.Error() != want {
			t.Errorf("error %.200q\nwant  %.200q", err, want)
		}
		log.mu.Lock()
		lines := append([]string(nil), log.lines...)
		log.mu.Unlock()
		failures := 0
		for _, l := range lines {
			if strings.ContainsAny(l, "\r\n\x1b\u2028") || len(l) > 2100 {
				t.Errorf("log line of %d bytes is not one bounded line: %.300q", len(l), l)
			}
			if strings.Contains(l, "KMSInternalException: "+tc.want) {
				failures++
			}
		}
		// The failed attempt (Warn) and the failed call (Error).
		if failures != 2 {
			t.Errorf("%d lines name the failure, want 2:\n%.2000s", failures, strings.Join(lines, "\n"))
		}
	}
}
