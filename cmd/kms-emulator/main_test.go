package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:80", "example.com:80", "localhost:0", "nonsense"} {
		if err := loopbackOnly(addr); err == nil {
			t.Errorf("%q accepted", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.1:8080", "[::1]:0"} {
		if err := loopbackOnly(addr); err != nil {
			t.Errorf("%q refused: %v", addr, err)
		}
	}
	var out bytes.Buffer
	if err := run([]string{"-listen", "0.0.0.0:0"}, &out); err == nil || !strings.Contains(err.Error(), "non-loopback") {
		t.Fatalf("run -listen 0.0.0.0:0: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPortFileAndMaxLifetime runs the command in-process: it writes the
// port file, creates -key keys, answers, and exits by itself.
func TestPortFileAndMaxLifetime(t *testing.T) {
	dir := t.TempDir()
	portFile := filepath.Join(dir, "port")
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"-port-file", portFile, "-max-lifetime", "2s", "-key", "k1=alias/a,alias/b", "-key", "k2", "-seed", "00ff"}, &out)
	}()
	var addr string
	for i := 0; i < 100 && addr == ""; i++ {
		if b, err := os.ReadFile(portFile); err == nil {
			addr = string(b)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") || !strings.HasSuffix(addr, "\n") {
		t.Fatalf("port file %q", addr)
	}
	resp, err := http.Post("http://"+strings.TrimSpace(addr)+"/_emulator/keys", "application/json", strings.NewReader(`{"KeyId":"k1","Aliases":["alias/c"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("control request: %d", resp.StatusCode)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop after -max-lifetime")
	}
	if !strings.Contains(out.String(), "max lifetime") || !strings.Contains(out.String(), "op=_emulator/keys") {
		t.Fatalf("output:\n%s", out.String())
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".kms-emulator-port-*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-seed", "xyz"},
		{"-max-lifetime", "0s"},
		{"-key", "bad/id"},
		{"-key", "=alias/x"},
		{"extra"},
	} {
		var out bytes.Buffer
		if err := run(args, &out); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
