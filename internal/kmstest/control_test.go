package kmstest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

func ctl(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestControlEndpoints(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	cx := ctx(t)
	if st, body := ctl(t, "GET", url+"/_emulator/health", ""); st != 200 || body != "ok\n" {
		t.Fatalf("health: %d %q", st, body)
	}
	st, body := ctl(t, "POST", url+"/_emulator/keys", `{"KeyId":"ctl-key","Aliases":["alias/ctl"]}`)
	if st != 200 || body != arnOf("ctl-key")+"\n" {
		t.Fatalf("keys: %d %q", st, body)
	}
	if st, body := ctl(t, "POST", url+"/_emulator/keys", `{"KeyId":"bad/id"}`); st != 400 {
		t.Fatalf("bad key id: %d %q", st, body)
	}
	c := client(t, url)
	must(c.DescribeKey(cx, &kms.DescribeKeyInput{KeyId: aws.String("alias/ctl")})).ok(t)

	if st, body := ctl(t, "POST", url+"/_emulator/faults", "fail=DescribeKey:ThrottlingException:1"); st != 204 {
		t.Fatalf("faults: %d %q", st, body)
	}
	if st, body := ctl(t, "GET", url+"/_emulator/faults", ""); st != 200 || body != "fail=DescribeKey:ThrottlingException:1\n" {
		t.Fatalf("GET faults: %d %q", st, body)
	}
	_, err := c.DescribeKey(cx, &kms.DescribeKeyInput{KeyId: aws.String("alias/ctl")})
	wantCode(t, err, "ThrottlingException")
	st, body = ctl(t, "POST", url+"/_emulator/faults", "fail=Decrypt")
	if st != 400 || !strings.Contains(body, "want fail=<Op>:<Exception>[:<count>]") {
		t.Fatalf("bad spec: %d %q", st, body)
	}

	st, body = ctl(t, "GET", url+"/_emulator/calls", "")
	var calls map[string]int
	if err := json.Unmarshal([]byte(body), &calls); st != 200 || err != nil || calls["DescribeKey"] != 2 {
		t.Fatalf("calls: %d %q %v", st, body, err)
	}
	if st, _ := ctl(t, "POST", url+"/_emulator/calls/reset", ""); st != 204 || len(s.Calls()) != 0 {
		t.Fatalf("reset: %d %v", st, s.Calls())
	}

	if st, body := ctl(t, "POST", url+"/_emulator/credentials", `{"AccessKeyId":"AKIDNEW","SecretAccessKey":"newsecret","SessionToken":"tok"}`); st != 204 {
		t.Fatalf("credentials: %d %q", st, body)
	}
	_, err = c.DescribeKey(cx, &kms.DescribeKeyInput{KeyId: aws.String("alias/ctl")})
	wantCode(t, err, "UnrecognizedClientException")
	must(client(t, url, withAKID("AKIDNEW"), withSecret("newsecret"), withToken("tok")).DescribeKey(cx, &kms.DescribeKeyInput{KeyId: aws.String("ctl-key")})).ok(t)
	if st, _ := ctl(t, "POST", url+"/_emulator/credentials", `{"AccessKeyId":""}`); st != 400 {
		t.Fatalf("empty credentials: %d", st)
	}
	ctl(t, "POST", url+"/_emulator/credentials", `{"AccessKeyId":"`+testAKID+`","SecretAccessKey":"`+testSecret+`"}`)

	if st, _ := ctl(t, "POST", url+"/_emulator/region", "ap-south-1\n"); st != 204 || s.Region() != "ap-south-1" {
		t.Fatalf("region: %d %s", st, s.Region())
	}
	_, err = c.DescribeKey(cx, &kms.DescribeKeyInput{KeyId: aws.String("ctl-key")})
	wantCode(t, err, "InvalidSignatureException")
	must(client(t, url, withRegion("ap-south-1")).DescribeKey(cx, &kms.DescribeKeyInput{KeyId: aws.String("ctl-key")})).ok(t)
	if st, _ := ctl(t, "POST", url+"/_emulator/region", "Not A Region"); st != 400 {
		t.Fatalf("bad region: %d", st)
	}
	if st, _ := ctl(t, "GET", url+"/_emulator/keys", ""); st != 405 {
		t.Fatalf("GET keys: %d", st)
	}
	if st, _ := ctl(t, "GET", url+"/_emulator/nothing", ""); st != 404 {
		t.Fatalf("unknown control endpoint: %d", st)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLogHoldsNoSecrets(t *testing.T) {
	t.Parallel()
	var log lockedBuffer
	s, url := emu(t, Config{Log: &log})
	s.CreateKey("logged-key")
	c := client(t, url)
	cx := ctx(t)
	pt := []byte("log-must-not-show-this-plaintext")
	enc := must(c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("logged-key"), Plaintext: pt})).ok(t)
	dec := must(c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})).ok(t)
	_, err := c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: []byte("garbage")})
	wantCode(t, err, "InvalidCiphertextException")
	_, err = client(t, url, withSecret("wrong")).Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("logged-key"), Plaintext: pt})
	wantCode(t, err, "InvalidSignatureException")
	ctl(t, "GET", url+"/_emulator/calls", "")

	out := log.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 5 log lines, got:\n%s", out)
	}
	for i, want := range []string{
		"op=Encrypt key=logged-key status=200 error=-",
		"op=Decrypt key=logged-key status=200 error=-",
		"op=Decrypt key=- status=400 error=InvalidCiphertextException",
		"op=Encrypt key=- status=400 error=InvalidSignatureException",
		"op=_emulator/calls key=- status=200 error=-",
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d %q lacks %q", i, lines[i], want)
		}
	}
	for _, secret := range []string{
		string(pt), base64.StdEncoding.EncodeToString(pt), base64.StdEncoding.EncodeToString(enc.CiphertextBlob),
		base64.StdEncoding.EncodeToString(dec.Plaintext), testSecret, "wrong", "Signature=", "Credential=", "AWS4",
	} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q:\n%s", secret, out)
		}
	}
}
