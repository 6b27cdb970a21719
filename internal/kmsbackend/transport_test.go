package kmsbackend_test

import (
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// kmsTransportServer answers every request with a Decrypt answer and
// records the connection and protocol of each.
type kmsTransportServer struct {
	*httptest.Server
	mu     sync.Mutex
	remote map[string]int
	protos map[string]int
}

func newTransportServer(t *testing.T, tls bool) *kmsTransportServer {
	t.Helper()
	s := &kmsTransportServer{remote: map[string]int{}, protos: map[string]int{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.remote[r.RemoteAddr]++
		s.protos[r.Proto]++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Write([]byte(`{"KeyId":"arn:k","Plaintext":"MDEyMzQ1Njc4OWFiY2RlZg=="}`))
	}))
	if tls {
		s.EnableHTTP2 = true
		s.StartTLS()
		bundle := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_CA_BUNDLE", bundle)
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// Calls one after the other share one kept-alive connection. The SDK
// closes a request's body as soon as the answer arrives; without
// readCloserOnly, net/http then often counted the request as not fully
// written and dropped the connection (about one call in ten here).
func TestConnectionsKeptAlive(t *testing.T) {
	awsEnv(t)
	srv := newTransportServer(t, false)
	c := newClient(t, srv.URL, nil)
	for i := range 100 {
		if got, err := decrypt(c, callCtx(t), []byte("blob")); err != nil || string(got) != "0123456789abcdef" {
			t.Fatalf("call %d: %q, %v", i, got, err)
		}
	}
	if len(srv.remote) != 1 {
		t.Errorf("100 calls used %d connections, want 1: %v", len(srv.remote), srv.remote)
	}
}

// Over TLS the client speaks HTTP/1.1 even to a server that offers
// HTTP/2: over HTTP/2 an answer is also copied through the framer's and
// the streams' pooled buffers (TestDecryptLeavesNoKeyCopies). The CA
// bundle (AWS_CA_BUNDLE) still applies to the KMS client.
func TestHTTP1Only(t *testing.T) {
	awsEnv(t)
	srv := newTransportServer(t, true)
	c := newClient(t, srv.URL, nil)
	for range 3 {
		if got, err := decrypt(c, callCtx(t), []byte("blob")); err != nil || base64.StdEncoding.EncodeToString(got) != "MDEyMzQ1Njc4OWFiY2RlZg==" {
			t.Fatalf("Decrypt over TLS: %q, %v", got, err)
		}
	}
	if len(srv.protos) != 1 || srv.protos["HTTP/1.1"] != 3 {
		t.Errorf("protocols used: %v, want HTTP/1.1 only", srv.protos)
	}
	if len(srv.remote) != 1 {
		t.Errorf("3 calls used %d connections, want 1", len(srv.remote))
	}
}
