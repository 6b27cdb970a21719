package kmstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

const (
	testAKID   = "AKIDKMSTESTEMULATOR1"
	testSecret = "kmstest/secret+key=for/loopback/tests/only"
	testRegion = "eu-west-3"
	testAcct   = "123456789012"
)

// emu starts an emulator for one test and stops it when the test ends.
func emu(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.AccessKeyID == "" {
		cfg.AccessKeyID, cfg.SecretAccessKey = testAKID, testSecret
	}
	if cfg.Region == "" {
		cfg.Region = testRegion
	}
	if cfg.AccountID == "" {
		cfg.AccountID = testAcct
	}
	s, ts, url := Start(cfg)
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return s, url
}

type clientOpts struct {
	akid, secret, token, region string
	retries                     bool
}

// client is a real aws-sdk-go-v2 KMS client for url. By default it has
// the test credentials and region and makes one attempt per call; with
// retries it has the SDK's standard retryer, fresh (so a fresh budget).
func client(t *testing.T, url string, opts ...func(*clientOpts)) *kms.Client {
	t.Helper()
	o := clientOpts{akid: testAKID, secret: testSecret, region: testRegion}
	for _, f := range opts {
		f(&o)
	}
	cfg := aws.Config{
		Region:      o.region,
		Credentials: credentials.NewStaticCredentialsProvider(o.akid, o.secret, o.token),
	}
	if !o.retries {
		cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	}
	return kms.NewFromConfig(cfg, func(ko *kms.Options) { ko.BaseEndpoint = aws.String(url) })
}

func withSecret(s string) func(*clientOpts) { return func(o *clientOpts) { o.secret = s } }
func withAKID(s string) func(*clientOpts)   { return func(o *clientOpts) { o.akid = s } }
func withToken(s string) func(*clientOpts)  { return func(o *clientOpts) { o.token = s } }
func withRegion(s string) func(*clientOpts) { return func(o *clientOpts) { o.region = s } }
func withRetries(o *clientOpts)             { o.retries = true }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// apiCode returns the KMS exception name of err, failing the test if err
// is no API error.
func apiCode(t *testing.T, err error) string {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want a KMS API error, got %v", err)
	}
	return ae.ErrorCode()
}

func wantCode(t *testing.T, err error, code string) smithy.APIError {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s, got success", code)
	}
	if got := apiCode(t, err); got != code {
		t.Fatalf("want %s, got %s (%v)", code, got, err)
	}
	var ae smithy.APIError
	errors.As(err, &ae)
	return ae
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

type result[T any] struct {
	v   T
	err error
}

// must(call(...)).ok(t) is the call's value, or the test fails.
func must[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) ok(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

// rawKMS sends a KMS request to url's path / signed with the SDK's own
// SigV4 signer at time when; edit, if set, changes the request after
// signing. It returns the status, the exception name ("" on success) and
// the body.
func rawKMS(t *testing.T, url, target string, body []byte, when time.Time, signLen int64, edit func(*http.Request)) (int, string, []byte) {
	t.Helper()
	return rawKMSSignedAt(t, url, "/", target, body, when, signLen, edit)
}

// rawKMSSignedAt is rawKMS with the request made and signed for path.
func rawKMSSignedAt(t *testing.T, url, path, target string, body []byte, when time.Time, signLen int64, edit func(*http.Request)) (int, string, []byte) {
	t.Helper()
	req := signedRequest(t, url+path, target, body, when, signLen)
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	code := ""
	if resp.StatusCode != http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
			t.Errorf("error content type %q", ct)
		}
		_, rest, _ := strings.Cut(string(b), `"__type":"`)
		code, _, _ = strings.Cut(rest, `"`)
	}
	return resp.StatusCode, code, b
}

// signedRequest makes a KMS request to url signed with the SDK's own SigV4
// signer at time when, with the test credentials and region; signLen is
// the content length the signer sees (-1: sign without content-length,
// as the AWS CLIs do).
func signedRequest(t *testing.T, url, target string, body []byte, when time.Time, signLen int64) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	sum := sha256.Sum256(body)
	real := req.ContentLength
	req.ContentLength = signLen
	creds := aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: testSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "kms", testRegion, when); err != nil {
		t.Fatal(err)
	}
	req.ContentLength = real
	return req
}
