package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/mariadb-go/aws_key_management/internal/kmstest"
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
// port file, creates the -key keys with their aliases, accepts the default
// credentials, derives key material from -seed, answers, and exits by
// itself.
func TestPortFileAndMaxLifetime(t *testing.T) {
	dir := t.TempDir()
	portFile := filepath.Join(dir, "port")
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"-port-file", portFile, "-max-lifetime", "3s", "-key", "k1=alias/a,alias/b", "-key", "k2", "-seed", "00ff"}, &out)
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
	url := "http://" + strings.TrimSpace(addr)
	cx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Signed requests with the default credentials and region: -key made
	// k1 with alias/a and alias/b, and k2.
	c := client(url, kmstest.DefaultRegion)
	la, err := c.ListAliases(cx, &kms.ListAliasesInput{})
	if err != nil {
		t.Fatalf("ListAliases: %v", err)
	}
	aliases := map[string]string{}
	for _, a := range la.Aliases {
		aliases[aws.ToString(a.AliasName)] = aws.ToString(a.TargetKeyId)
	}
	if want := map[string]string{"alias/a": "k1", "alias/b": "k1"}; !reflect.DeepEqual(aliases, want) {
		t.Errorf("aliases %v, want %v", aliases, want)
	}
	lk, err := c.ListKeys(cx, &kms.ListKeysInput{})
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	var ids []string
	for _, k := range lk.Keys {
		ids = append(ids, aws.ToString(k.KeyId))
	}
	if want := []string{"k1", "k2"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("keys %v, want %v", ids, want)
	}
	for _, id := range []string{"k2", "alias/b"} {
		dk, err := c.DescribeKey(cx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
		if err != nil {
			t.Fatalf("DescribeKey %s: %v", id, err)
		}
		wantID := map[string]string{"k2": "k2", "alias/b": "k1"}[id]
		if got := aws.ToString(dk.KeyMetadata.KeyId); got != wantID || dk.KeyMetadata.KeyState != types.KeyStateEnabled {
			t.Errorf("DescribeKey %s: key %s, state %s", id, got, dk.KeyMetadata.KeyState)
		}
	}
	// -seed 00ff: a blob made under alias/a opens in an emulator with the
	// same seed and key id, and not in one with another seed.
	pt := []byte("sealed under the seed")
	enc, err := c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("alias/a"), Plaintext: pt})
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	for _, seed := range [][]byte{{0x00, 0xff}, {0x00, 0xfe}} {
		s, ts, u := kmstest.Start(kmstest.Config{Seed: seed})
		s.CreateKey("k1")
		dec, err := client(u, kmstest.DefaultRegion).Decrypt(cx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
		s.Close()
		ts.Close()
		switch {
		case seed[1] == 0xff && (err != nil || !bytes.Equal(dec.Plaintext, pt)):
			t.Errorf("seed %x: the blob does not open: %v", seed, err)
		case seed[1] != 0xff && err == nil:
			t.Errorf("seed %x: the blob opens", seed)
		}
	}

	resp, err := http.Post(url+"/_emulator/keys", "application/json", strings.NewReader(`{"KeyId":"k1","Aliases":["alias/c"]}`))
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
	for _, line := range []string{"max lifetime", "op=ListAliases key=- status=200", "op=DescribeKey key=k2 status=200", "op=_emulator/keys"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output has no %q:\n%s", line, out.String())
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".kms-emulator-port-*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

// client is an SDK KMS client for url with the emulator's default
// credentials, one attempt per call.
func client(url, region string) *kms.Client {
	return kms.NewFromConfig(aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(kmstest.DefaultAccessKeyID, kmstest.DefaultSecretAccessKey, ""),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	}, func(o *kms.Options) { o.BaseEndpoint = aws.String(url) })
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-seed", "xyz"},
		{"-max-lifetime", "0s"},
		{"-key", "bad/id"},
		{"-key", "=alias/x"},
		{"extra"},
		{"-quota", "-1"},
		{"-latency", "-5ms"},
	} {
		var out bytes.Buffer
		if err := run(args, &out); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
