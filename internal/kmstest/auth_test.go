package kmstest

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

func TestSignatureChecks(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	s.CreateKey("k")
	cx := ctx(t)
	in := &kms.DescribeKeyInput{KeyId: aws.String("k")}
	must(client(t, url).DescribeKey(cx, in)).ok(t)

	_, err := client(t, url, withSecret("not-the-secret")).DescribeKey(cx, in)
	if ae := wantCode(t, err, "InvalidSignatureException"); ae.ErrorMessage() != msgBadSignature {
		t.Errorf("message %q", ae.ErrorMessage())
	}
	_, err = client(t, url, withAKID("AKIDUNKNOWN")).DescribeKey(cx, in)
	if ae := wantCode(t, err, "UnrecognizedClientException"); ae.ErrorMessage() != msgBadToken {
		t.Errorf("message %q", ae.ErrorMessage())
	}
	_, err = client(t, url, withRegion("us-west-2")).DescribeKey(cx, in)
	if ae := wantCode(t, err, "InvalidSignatureException"); ae.ErrorMessage() != "Credential should be scoped to a valid region, not 'us-west-2'. " {
		t.Errorf("message %q", ae.ErrorMessage())
	}
	if httpStatus(err) != 400 {
		t.Errorf("HTTP %d", httpStatus(err))
	}
	// The emulator moves region: the old one is refused, the new one works.
	s.SetRegion("us-west-2")
	dk := must(client(t, url, withRegion("us-west-2")).DescribeKey(cx, in)).ok(t)
	if !strings.HasPrefix(*dk.KeyMetadata.Arn, "arn:aws:kms:us-west-2:") {
		t.Errorf("ARN after SetRegion: %s", *dk.KeyMetadata.Arn)
	}
	_, err = client(t, url).DescribeKey(cx, in)
	wantCode(t, err, "InvalidSignatureException")
}

func TestSessionToken(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{SessionToken: "the-token"})
	s.CreateKey("k")
	cx := ctx(t)
	in := &kms.DescribeKeyInput{KeyId: aws.String("k")}
	_, err := client(t, url).DescribeKey(cx, in)
	wantCode(t, err, "UnrecognizedClientException")
	_, err = client(t, url, withToken("other-token")).DescribeKey(cx, in)
	wantCode(t, err, "UnrecognizedClientException")
	must(client(t, url, withToken("the-token")).DescribeKey(cx, in)).ok(t)

	s.SetCredentials(testAKID, testSecret, "")
	must(client(t, url).DescribeKey(cx, in)).ok(t)
	_, err = client(t, url, withToken("the-token")).DescribeKey(cx, in)
	wantCode(t, err, "UnrecognizedClientException")
}

// TestSignedHeadersOnly checks the signature over exactly the headers
// the client lists: unsigned headers may change, signed ones and the body
// may not, and a client that leaves out content-length (as the AWS CLIs
// do) is accepted.
func TestSignedHeadersOnly(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{Region: testRegion})
	s.CreateKey("k")
	body := []byte(`{"KeyId":"k"}`)
	now := time.Now()
	const target = "TrentService.DescribeKey"

	if st, code, b := rawKMS(t, url, target, body, now, int64(len(body)), nil); st != 200 {
		t.Fatalf("signed by the SDK signer: %d %s %s", st, code, b)
	}
	var authz string
	st, code, b := rawKMS(t, url, target, body, now, -1, func(r *http.Request) { authz = r.Header.Get("Authorization") })
	if st != 200 || strings.Contains(authz, "content-length") {
		t.Fatalf("signed without content-length (%s): %d %s %s", authz, st, code, b)
	}
	if st, code, _ := rawKMS(t, url, target, body, now, -1, func(r *http.Request) { r.Header.Set("User-Agent", "changed/1.0") }); st != 200 {
		t.Fatalf("unsigned header changed: %d %s", st, code)
	}
	if st, code, _ := rawKMS(t, url, target, body, now, -1, func(r *http.Request) {
		r.Header.Set("Content-Type", "application/x-amz-json-1.1 ") // trailing space is trimmed
	}); st != 200 {
		t.Fatalf("signed header with extra space: %d %s", st, code)
	}
	for name, edit := range map[string]func(*http.Request){
		"target": func(r *http.Request) { r.Header.Set("X-Amz-Target", "TrentService.ListKeys") },
		"content-type": func(r *http.Request) {
			r.Header.Set("Content-Type", "application/json")
		},
		"body": func(r *http.Request) {
			r.Body = io.NopCloser(bytes.NewReader([]byte(`{"KeyId":"x"}`)))
		},
		"date":  func(r *http.Request) { r.Header.Set("X-Amz-Date", now.Add(time.Second).UTC().Format(amzDate)) },
		"query": func(r *http.Request) { r.URL.RawQuery = "a=b" },
	} {
		st, code, _ := rawKMS(t, url, target, body, now, int64(len(body)), edit)
		if st != 400 || code != "InvalidSignatureException" {
			t.Errorf("%s changed after signing: %d %s", name, st, code)
		}
	}
	// The path is signed. Over HTTP only / reaches the signature check
	// (any other path is answered 404 first), where a verifier that left
	// the path out would compute the same as one that signs "/". So the
	// verifier is also called directly: a request signed for /other
	// verifies at /other, and not once its path changed.
	for _, p := range []string{"/other", "//"} {
		st, code, _ := rawKMSSignedAt(t, url, p, target, body, now, int64(len(body)), func(r *http.Request) { r.URL.Path = "/" })
		if st != 400 || code != "InvalidSignatureException" {
			t.Errorf("signed for path %q, sent to /: %d %s", p, st, code)
		}
	}
	req := signedRequest(t, url+"/other", target, body, now, int64(len(body)))
	if _, aerr := s.verify(req, body, "kms"); aerr != nil {
		t.Errorf("signed for /other, verified at /other: %v", aerr)
	}
	for _, p := range []string{"/", "/Other", "/other/"} {
		req.URL.Path = p
		if _, aerr := s.verify(req, body, "kms"); aerr == nil || aerr.code != "InvalidSignatureException" {
			t.Errorf("signed for /other, verified at %s: %v", p, aerr)
		}
	}
	if st, code, _ := rawKMS(t, url, target, body, now, int64(len(body)), func(r *http.Request) { r.URL.Path = "//" }); st != 404 || code != "UnknownOperationException" {
		t.Errorf("sent to //: %d %s, want 404 (no KMS API there)", st, code)
	}
	st, code, b = rawKMS(t, url, target, body, now.Add(-20*time.Minute), -1, nil)
	if st != 400 || code != "InvalidSignatureException" || !strings.Contains(string(b), "Signature expired") {
		t.Errorf("20 minutes old: %d %s %s", st, code, b)
	}
	st, code, b = rawKMS(t, url, target, body, now.Add(20*time.Minute), -1, nil)
	if st != 400 || code != "InvalidSignatureException" || !strings.Contains(string(b), "not yet current") {
		t.Errorf("20 minutes ahead: %d %s %s", st, code, b)
	}
	if st, code, _ := rawKMS(t, url, target, body, now.Add(-10*time.Minute), -1, nil); st != 200 {
		t.Errorf("10 minutes old (within the 15 allowed): %d %s", st, code)
	}
	st, code, _ = rawKMS(t, url, target, body, now, -1, func(r *http.Request) { r.Header.Del("Authorization") })
	if st != 400 || code != "MissingAuthenticationTokenException" {
		t.Errorf("no Authorization: %d %s", st, code)
	}
	st, code, _ = rawKMS(t, url, target, body, now, -1, func(r *http.Request) {
		r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=", "SignedHeaders=x-amz-date;", 1))
	})
	if st != 400 || code != "IncompleteSignatureException" && code != "InvalidSignatureException" {
		t.Errorf("SignedHeaders edited: %d %s", st, code)
	}
	st, code, _ = rawKMS(t, url, "TrentService.NoSuchThing", []byte(`{}`), now, -1, nil)
	if st != 400 || code != "UnknownOperationException" {
		t.Errorf("unknown operation: %d %s", st, code)
	}
	st, code, _ = rawKMS(t, url, target, []byte(`{"KeyId":`), now, -1, nil)
	if st != 400 || code != "SerializationException" {
		t.Errorf("bad JSON: %d %s", st, code)
	}
	if n := s.Calls()["NoSuchThing"]; n != 1 {
		t.Errorf("unknown operation counted %d times", n)
	}
}
