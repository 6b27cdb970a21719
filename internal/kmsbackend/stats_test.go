package kmsbackend_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
)

// The client counts, per operation, its HTTP attempts, the retries among
// them and the throttled ones, which only the SDK's stack sees.
func TestAttemptsCounted(t *testing.T) {
	awsEnv(t)
	srv := newKMSServer(t, func(n int, r request, w http.ResponseWriter) {
		switch {
		case r.target == "TrentService.GenerateDataKeyWithoutPlaintext":
			writeJSON(w, 400, map[string]string{"__type": "DisabledException", "message": "disabled"})
		case n == 1:
			writeJSON(w, 400, map[string]string{"__type": "ThrottlingException", "message": "Rate exceeded"})
		case n == 2:
			writeJSON(w, 500, map[string]string{"__type": "KMSInternalException", "message": "oops"})
		default:
			writeJSON(w, 200, map[string]string{"Plaintext": base64.StdEncoding.EncodeToString(make([]byte, 16)), "KeyId": "k"})
		}
	})
	c := newClient(t, srv.URL, nil)
	if _, err := decrypt(c, callCtx(t), []byte("blob")); err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if _, err := decrypt(c, callCtx(t), []byte("blob")); err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if _, err := c.GenerateDataKeyWithoutPlaintext(context.Background(), "k", "AES_128"); err == nil {
		t.Fatal("Generate succeeded")
	}
	for _, tc := range []struct {
		op                           string
		attempts, retries, throttled int64
	}{
		{"Decrypt", 4, 2, 1}, // throttled, 500, success; then a success
		{"GenerateDataKeyWithoutPlaintext", 1, 0, 0},
		{"Encrypt", 0, 0, 0},
	} {
		a, r, th := c.Attempts(tc.op)
		if a != tc.attempts || r != tc.retries || th != tc.throttled {
			t.Errorf("%s: attempts %d, retries %d, throttled %d; want %d, %d, %d", tc.op, a, r, th, tc.attempts, tc.retries, tc.throttled)
		}
	}
	if a, _, _ := kmsbackend.NewWithAPI(&fakeAPI{}, 0).Attempts("Decrypt"); a != 0 {
		t.Errorf("a test double counts %d attempts", a)
	}
}
