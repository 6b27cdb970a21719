package kmsbackend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/kmstest"
)

// emulatorEnv starts the loopback KMS with two keys and points the
// environment at it: static credentials from the environment only.
func emulatorEnv(t *testing.T, cfg kmstest.Config) (*kmstest.Server, string) {
	t.Helper()
	if cfg.Region == "" {
		cfg.Region = "eu-west-1"
	}
	cfg.AccessKeyID, cfg.SecretAccessKey = "AKIAEMULATORTEST", "emulator-secret"
	srv, ts, url := kmstest.Start(cfg)
	t.Cleanup(ts.Close)
	srv.CreateKey("1234abcd-0000-4000-8000-00000000000a", "alias/mariadb-a")
	srv.CreateKey("1234abcd-0000-4000-8000-00000000000b", "alias/mariadb-b")
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           cfg.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       cfg.SecretAccessKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  cfg.Region,
		"AWS_DEFAULT_REGION":          "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
	return srv, url
}

// master_key_id may be a key id, a key ARN, an alias or an alias ARN; a
// blob wrapped under one key still opens after master_key_id names
// another, because Decrypt sends only the ciphertext.
func TestEmulatorMasterKeyForms(t *testing.T) {
	_, url := emulatorEnv(t, kmstest.Config{})
	var mu sync.Mutex
	var lines []string
	c, err := New(context.Background(), Config{EndpointURL: url, RequestTimeout: 2 * time.Second, Log: &Logger{
		Level: func() LogLevel { return LogTrace },
		Print: func(_ LogLevel, msg string) { mu.Lock(); lines = append(lines, msg); mu.Unlock() },
	}})
	if err != nil {
		t.Fatal(err)
	}
	// The emulator verifies that requests are signed for its region.
	if !strings.HasPrefix(c.Description, "KMS client for region eu-west-1 at ") {
		t.Fatalf("Description %q does not name the environment's eu-west-1", c.Description)
	}
	forms := []string{
		"1234abcd-0000-4000-8000-00000000000a",
		"arn:aws:kms:eu-west-1:111122223333:key/1234abcd-0000-4000-8000-00000000000a",
		"alias/mariadb-a",
		"arn:aws:kms:eu-west-1:111122223333:alias/mariadb-a",
	}
	var blobs [][]byte
	for _, f := range forms {
		blob, err := c.GenerateDataKeyWithoutPlaintext(context.Background(), f, "AES_256")
		if err != nil {
			t.Fatalf("generate under %q: %v", f, err)
		}
		blobs = append(blobs, blob)
	}
	// master_key_id replaced: blobs of key a still open, as do key b's.
	bBlob, err := c.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/mariadb-b", "AES_128")
	if err != nil {
		t.Fatal(err)
	}
	for i, blob := range append(blobs, bBlob) {
		key, err := decrypt(c, context.Background(), blob)
		want := 32
		if i == len(blobs) {
			want = 16
		}
		if err != nil || len(key) != want {
			t.Fatalf("decrypt blob %d: %d bytes, %v", i, len(key), err)
		}
		if bytes.Contains(blob, key) {
			t.Fatalf("blob %d holds its plaintext", i)
		}
	}
	_, err = c.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/none", "AES_128")
	var api interface{ ErrorCode() string }
	if !errors.As(err, &api) || api.ErrorCode() != "NotFoundException" {
		t.Fatalf("unknown alias: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) == 0 {
		t.Fatal("no request log at Trace")
	}
	for _, l := range lines {
		if strings.Contains(l, "emulator-secret") || strings.Contains(l, "Signature=") || strings.Contains(l, "AWS4-HMAC") {
			t.Fatalf("log line shows a secret: %s", l)
		}
	}
}

// Short-lived STS credentials (an MFA wrapper's AWS_SESSION_TOKEN) are
// sent; a wrong token is refused by KMS with its own error.
func TestEmulatorSessionToken(t *testing.T) {
	srv, url := emulatorEnv(t, kmstest.Config{SessionToken: "sts-session-token"})
	t.Setenv("AWS_SESSION_TOKEN", "sts-session-token")
	c, err := New(context.Background(), Config{EndpointURL: url, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/mariadb-a", "AES_128"); err != nil {
		t.Fatalf("with the session token: %v", err)
	}
	srv.SetCredentials("AKIAEMULATORTEST", "emulator-secret", "another-token")
	_, err = c.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/mariadb-a", "AES_128")
	var api interface{ ErrorCode() string }
	if !errors.As(err, &api) || api.ErrorCode() != "UnrecognizedClientException" {
		t.Fatalf("wrong session token: %v", err)
	}
}

// A region set by aws_key_management_region wins over the environment's,
// and the emulator refuses a request signed for another region.
func TestEmulatorRegionVariableWins(t *testing.T) {
	_, url := emulatorEnv(t, kmstest.Config{Region: "eu-west-1"})
	c, err := New(context.Background(), Config{Region: "ap-south-1", EndpointURL: url, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Description, "KMS client for region ap-south-1 at ") {
		t.Fatalf("Description %q does not name ap-south-1", c.Description)
	}
	// The emulator names the region the request was signed for.
	_, err = c.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/mariadb-a", "AES_128")
	var api interface {
		ErrorCode() string
		ErrorMessage() string
	}
	if !errors.As(err, &api) || api.ErrorCode() != "InvalidSignatureException" || !strings.Contains(api.ErrorMessage(), "not 'ap-south-1'") {
		t.Fatalf("region mismatch: %v", err)
	}
}

// ECS task-role credentials: the chain fetches them from the container
// credentials endpoint (a loopback server here) when nothing earlier in the
// chain has keys.
func TestEmulatorContainerCredentials(t *testing.T) {
	srv, url := emulatorEnv(t, kmstest.Config{SessionToken: "ecs-token"})
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	var fetched atomic.Int32
	creds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		if r.URL.Path != "/v2/credentials/task" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"AccessKeyId":"AKIAEMULATORTEST","SecretAccessKey":"emulator-secret","Token":"ecs-token","Expiration":%q}`,
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	}))
	t.Cleanup(creds.Close)
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", creds.URL+"/v2/credentials/task")
	c, err := New(context.Background(), Config{EndpointURL: url, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/mariadb-a", "AES_128"); err != nil {
		t.Fatalf("with container credentials: %v", err)
	}
	if fetched.Load() == 0 {
		t.Fatal("the container credentials endpoint was never asked")
	}
	if srv.Calls()["GenerateDataKeyWithoutPlaintext"] != 1 {
		t.Fatalf("calls: %v", srv.Calls())
	}
}

// decrypt is Client.Decrypt with the key returned in a slice of its own.
func decrypt(c *Client, ctx context.Context, blob []byte) ([]byte, error) {
	dst := make([]byte, 32)
	n, err := c.Decrypt(ctx, blob, dst)
	if err != nil {
		return nil, err
	}
	return dst[:n], nil
}
