package kmsbackend

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/kmserr"
	"github.com/mariadb-go/aws_key_management/internal/kmstest"
)

const (
	arnA = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-0000-4000-8000-00000000000a"
	arnB = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-0000-4000-8000-00000000000b"
)

func emulatorClient(t *testing.T) (*kmstest.Server, *Client) {
	t.Helper()
	srv, url := emulatorEnv(t, kmstest.Config{})
	c, err := New(context.Background(), Config{EndpointURL: url, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

// ReEncrypt moves a data key from one KMS key to another inside KMS: the
// new blob names the destination, opens to the same key, and the source is
// reported; every form of key name works as the destination.
func TestReEncryptEmulator(t *testing.T) {
	srv, c := emulatorClient(t)
	ctx := context.Background()
	blob, err := c.GenerateDataKeyWithoutPlaintext(ctx, "alias/mariadb-a", "AES_256")
	if err != nil {
		t.Fatal(err)
	}
	want, err := decrypt(c, ctx, blob)
	if err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{"alias/mariadb-b", arnB, "1234abcd-0000-4000-8000-00000000000b",
		"arn:aws:kms:eu-west-1:111122223333:alias/mariadb-b"} {
		out, err := c.ReEncrypt(ctx, blob, dest)
		if err != nil {
			t.Fatalf("ReEncrypt to %s: %v", dest, err)
		}
		if out.SourceKeyARN != arnA || out.KeyARN != arnB {
			t.Errorf("to %s: source %q, destination %q", dest, out.SourceKeyARN, out.KeyARN)
		}
		if bytes.Equal(out.Blob, blob) {
			t.Errorf("to %s: the blob did not change", dest)
		}
		dst := make([]byte, 32)
		n, arn, err := c.DecryptWithKeyID(ctx, out.Blob, dst)
		if err != nil || arn != arnB || !bytes.Equal(dst[:n], want) {
			t.Errorf("to %s: the new blob opens to %d bytes under %q (%v); want the same key under B", dest, n, arn, err)
		}
	}
	if got := srv.Calls()["ReEncrypt"]; got != 4 {
		t.Errorf("ReEncrypt calls: %d, want 4", got)
	}
}

// Failures are *kmserr.Error lines in the plugin's format, naming the
// operation: a disabled source key, a destination that does not exist, a
// disabled destination, a blob that is not one.
func TestReEncryptErrors(t *testing.T) {
	srv, c := emulatorClient(t)
	ctx := context.Background()
	blob, err := c.GenerateDataKeyWithoutPlaintext(ctx, "alias/mariadb-a", "AES_128")
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error, code string) {
		t.Helper()
		var ke *kmserr.Error
		if !errors.As(err, &ke) || ke.Op != "ReEncrypt" || ke.Code != code {
			t.Fatalf("%s: %v, want a ReEncrypt %s", what, err, code)
		}
		if !strings.HasPrefix(err.Error(), "KMS Client API 'ReEncrypt' failed : "+code+" - ") {
			t.Fatalf("%s: error line %q", what, err)
		}
	}
	_, err = c.ReEncrypt(ctx, blob, "alias/none")
	check("unknown destination", err, "NotFoundException")
	_, err = c.ReEncrypt(ctx, []byte("not a blob at all"), "alias/mariadb-b")
	check("garbage blob", err, "InvalidCiphertextException")
	if err := srv.SetFaults("disable=1234abcd-0000-4000-8000-00000000000b"); err != nil {
		t.Fatal(err)
	}
	_, err = c.ReEncrypt(ctx, blob, "alias/mariadb-b")
	check("disabled destination", err, "DisabledException")
	if err := srv.SetFaults("disable=1234abcd-0000-4000-8000-00000000000a"); err != nil {
		t.Fatal(err)
	}
	_, err = c.ReEncrypt(ctx, blob, "alias/mariadb-b")
	check("disabled source", err, "DisabledException")
	// Throttling is retried by the SDK (3 attempts), then reported as
	// throttled and transient.
	if err := srv.SetFaults("fail=ReEncrypt:ThrottlingException:3"); err != nil {
		t.Fatal(err)
	}
	srv.ResetCalls()
	_, err = c.ReEncrypt(ctx, blob, "alias/mariadb-b")
	check("throttled", err, "ThrottlingException")
	var ke *kmserr.Error
	if errors.As(err, &ke); !ke.Throttled() || !ke.Transient() {
		t.Errorf("throttling is not throttled/transient: %+v", ke)
	}
	if n := srv.Calls()["ReEncrypt"]; n != MaxAttempts {
		t.Errorf("%d ReEncrypt attempts, want %d", n, MaxAttempts)
	}
}

func TestDescribeKey(t *testing.T) {
	srv, c := emulatorClient(t)
	ctx := context.Background()
	for _, name := range []string{"alias/mariadb-b", arnB, "1234abcd-0000-4000-8000-00000000000b"} {
		info, err := c.DescribeKey(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if info.ARN != arnB || info.KeyID != "1234abcd-0000-4000-8000-00000000000b" || info.State != "Enabled" ||
			info.Usage != "ENCRYPT_DECRYPT" || info.Spec != "SYMMETRIC_DEFAULT" {
			t.Errorf("DescribeKey(%s) = %+v", name, info)
		}
	}
	if err := srv.SetFaults("disable=1234abcd-0000-4000-8000-00000000000b"); err != nil {
		t.Fatal(err)
	}
	if info, err := c.DescribeKey(ctx, "alias/mariadb-b"); err != nil || info.State != "Disabled" {
		t.Errorf("disabled key: %+v, %v", info, err)
	}
	_, err := c.DescribeKey(ctx, "alias/none")
	var ke *kmserr.Error
	if !errors.As(err, &ke) || ke.Op != "DescribeKey" || ke.Code != "NotFoundException" {
		t.Errorf("unknown alias: %v", err)
	}
}

// An answer larger than MaxResponseBody is refused for these calls too
// (the bound sits in the HTTP client every call goes through).
func TestReEncryptBoundedAnswer(t *testing.T) {
	emulatorEnv(t, kmstest.Config{}) // credentials and region
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(200)
		w.Write([]byte(`{"CiphertextBlob":"` + strings.Repeat("A", MaxResponseBody+100) + `"}`))
	}))
	t.Cleanup(huge.Close)
	c, err := New(context.Background(), Config{EndpointURL: huge.URL, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ReEncrypt(context.Background(), []byte("blob"), "alias/x")
	var tooLarge *ResponseTooLargeError
	if !errors.As(err, &tooLarge) || !strings.Contains(err.Error(), "ResponseTooLarge") {
		t.Fatalf("huge ReEncrypt answer: %v", err)
	}
	_, err = c.DescribeKey(context.Background(), "alias/x")
	if !errors.As(err, &tooLarge) {
		t.Fatalf("huge DescribeKey answer: %v", err)
	}
}

// onlyPluginAPI implements API (the plugin's two calls) and nothing more.
type onlyPluginAPI struct{ API }

// A client whose API has no ReEncrypt says so instead of panicking.
func TestReEncryptWithoutRewrapAPI(t *testing.T) {
	c := NewWithAPI(onlyPluginAPI{}, time.Second)
	_, err := c.ReEncrypt(context.Background(), []byte("b"), "alias/x")
	if err == nil || !strings.Contains(err.Error(), "does not offer ReEncrypt") {
		t.Fatalf("ReEncrypt: %v", err)
	}
	_, err = c.DescribeKey(context.Background(), "alias/x")
	if err == nil || !strings.Contains(err.Error(), "does not offer DescribeKey") {
		t.Fatalf("DescribeKey: %v", err)
	}
}
