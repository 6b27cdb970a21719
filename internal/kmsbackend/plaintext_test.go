package kmsbackend

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/mariadb-go/aws_key_management/internal/kmstest"
)

// key32 is a 32-byte key whose base64 has a '/' and a '+'.
var key32 = []byte("\xfb\xff\xbf0123456789abcdef0123456789abc")

var key32b64 = base64.StdEncoding.EncodeToString(key32)

// recordingReader hands out body in pieces and remembers every slice it
// wrote into, to check afterwards that the reader's buffer was wiped.
type recordingReader struct {
	body  []byte
	given [][]byte
}

func (r *recordingReader) Read(p []byte) (int, error) {
	if len(r.body) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.body)
	r.body = r.body[n:]
	r.given = append(r.given, p[:n])
	return n, nil
}

func TestReadDecryptAnswer(t *testing.T) {
	// "+/+/..." as "\u002B\/+\/...".
	escaped := `\u00` + hex2(key32b64[0]) + strings.ReplaceAll(key32b64[1:], "/", `\/`)
	tests := []struct {
		name, body, sanitized string
	}{
		{"as KMS sends it", `{"KeyId":"arn:k","Plaintext":"` + key32b64 + `","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}`,
			`{"KeyId":"arn:k","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}`},
		{"other order, whitespace", " \r\n\t{ \"EncryptionAlgorithm\" :\t\"SYMMETRIC_DEFAULT\" ,\n \"Plaintext\" : \"" + key32b64 + "\" , \"KeyId\":\"arn:k\" }\n ",
			`{"KeyId":"arn:k","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}`},
		{"escapes in Plaintext", `{"Plaintext":"` + escaped + `"}`, `{}`},
		{"escaped member names, escaped KeyId kept as sent", `{"Key\u0049d":"arn:\/k\n","\u0050laintext":"` + key32b64 + `"}`,
			`{"KeyId":"arn:\/k\n"}`},
		{"other members of every kind", `{"A":null,"B":true,"C":false,"D":-1.5e+3,"E":0,"F":[1,[{"x":"\"}"}],[]],"G":{},"Plaintext":"` + key32b64 + `","H":"\ud83d\ude00"}`,
			`{}`},
		{"a 16-byte key", `{"Plaintext":"MDEyMzQ1Njc4OWFiY2RlZg=="}`, `{}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, 32)
			sink := &plaintextSink{dst: dst}
			r := &recordingReader{body: []byte(tc.body)}
			got, err := readDecryptAnswer(r, int64(len(tc.body)), sink)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			want := key32
			if strings.Contains(tc.name, "16-byte") {
				want = []byte("0123456789abcdef")
			}
			if !sink.filled || !bytes.Equal(dst[:sink.n], want) {
				t.Errorf("key %x (filled %v), want %x", dst[:sink.n], sink.filled, want)
			}
			if string(got) != tc.sanitized {
				t.Errorf("the SDK gets %s, want %s", got, tc.sanitized)
			}
			var v map[string]any
			if err := json.Unmarshal(got, &v); err != nil {
				t.Errorf("the SDK gets invalid JSON %s: %v", got, err)
			}
			for _, p := range r.given {
				if !bytes.Equal(p, make([]byte, len(p))) {
					t.Fatalf("the raw answer was not wiped: %q", p)
				}
			}
			if len(r.given) < len(tc.body)/16 {
				t.Errorf("read in %d pieces, want pieces of 16 bytes at most", len(r.given))
			}
		})
	}
}

func hex2(c byte) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[c>>4], digits[c&15]})
}

func TestReadDecryptAnswerRefuses(t *testing.T) {
	ok := `"Plaintext":"` + key32b64 + `"`
	tests := []struct{ name, body, reason string }{
		{"empty", ``, "not a JSON object"},
		{"array", `[` + ok + `]`, "not a JSON object"},
		{"no Plaintext", `{"KeyId":"k"}`, "no Plaintext"},
		{"Plaintext twice", `{` + ok + `,` + ok + `}`, "Plaintext appears twice"},
		{"Plaintext twice, once escaped", `{` + ok + `,"Plaintex\u0074":"AAAA"}`, "Plaintext appears twice"},
		{"Plaintext null", `{"Plaintext":null}`, "Plaintext is not a JSON string"},
		{"Plaintext a number", `{"Plaintext":12}`, "Plaintext is not a JSON string"},
		{"KeyId an object", `{` + ok + `,"KeyId":{}}`, "is not a JSON string"},
		{"KeyId twice", `{` + ok + `,"KeyId":"a","KeyId":"b"}`, "appears twice"},
		{"data after the object", `{` + ok + `} {}`, "data after the JSON object"},
		{"unterminated", `{` + ok, "expected ',' or '}'"},
		{"unterminated string", `{"Plaintext":"AAAA`, "unterminated string"},
		{"control character", "{\"Plaintext\":\"AA\nAA\"}", "control character"},
		{"bad escape", `{"Plaintext":"AA\xAA"}`, "bad escape"},
		{"bad \\u escape", `{"Plaintext":"\u00G1"}`, `bad \u escape`},
		{"trailing comma", `{` + ok + `,}`, "expected a string"},
		{"missing colon", `{"Plaintext" "AAAA"}`, "expected ':'"},
		{"bad literal", `{` + ok + `,"x":tru}`, "expected a value"},
		{"bad number", `{` + ok + `,"x":01}`, "expected ',' or '}'"},
		{"bad number 2", `{` + ok + `,"x":-}`, "bad number"},
		{"nested too deep", `{` + ok + `,"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "nested too deep"},
		{"not base64", `{"Plaintext":"AA*A"}`, "not valid base64"},
		{"unpadded", `{"Plaintext":"AAA"}`, "not valid base64"},
		{"padding inside", `{"Plaintext":"A=AA"}`, "not valid base64"},
		{"too much padding", `{"Plaintext":"A==="}`, "not valid base64"},
		{"escaped newline inside", `{"Plaintext":"AA\nAA=="}`, "not valid base64"},
		{"non-ASCII escape", `{"Plaintext":"\u00e9AAA"}`, "not valid base64"},
		{"non-zero padding bits", `{"Plaintext":"AB=="}`, "not valid base64"},
		{"a 48-byte key", `{"Plaintext":"` + base64.StdEncoding.EncodeToString(make([]byte, 48)) + `"}`, "Plaintext holds a key of 48 bytes; at most 32 fit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, 32)
			for i := range dst {
				dst[i] = 0xee
			}
			sink := &plaintextSink{dst: dst}
			r := &recordingReader{body: []byte(tc.body)}
			_, err := readDecryptAnswer(r, int64(len(tc.body)), sink)
			var bad *InvalidAnswerError
			if !errors.As(err, &bad) {
				t.Fatalf("got %v, want an InvalidAnswerError", err)
			}
			if !strings.Contains(err.Error(), tc.reason) || !strings.HasPrefix(err.Error(), "KMS Decrypt answer refused: ") {
				t.Errorf("error %q does not say %q", err, tc.reason)
			}
			if strings.Contains(err.Error(), key32b64[:8]) || strings.Contains(err.Error(), "AAAA") {
				t.Errorf("error %q quotes the answer", err)
			}
			if bad.RetryableError() || bad.ErrorCode() != "InvalidResponse" {
				t.Errorf("retryable %v, code %q", bad.RetryableError(), bad.ErrorCode())
			}
			if sink.filled {
				t.Errorf("the sink was filled")
			}
			for _, p := range r.given {
				if !bytes.Equal(p, make([]byte, len(p))) {
					t.Fatalf("the raw answer was not wiped: %q", p)
				}
			}
		})
	}
}

// A body longer than its Content-Length (which net/http never hands
// over) or than MaxResponseBody is refused, not cut.
func TestReadDecryptAnswerLength(t *testing.T) {
	body := `{"Plaintext":"` + key32b64 + `"}`
	sink := &plaintextSink{dst: make([]byte, 32)}
	_, err := readDecryptAnswer(strings.NewReader(body), int64(len(body)-1), sink)
	if err == nil || !strings.Contains(err.Error(), "longer than its Content-Length") {
		t.Errorf("short Content-Length: %v", err)
	}
	long := body + strings.Repeat(" ", MaxResponseBody)
	_, err = readDecryptAnswer(strings.NewReader(long), -1, sink)
	var tooLarge *ResponseTooLargeError
	if !errors.As(err, &tooLarge) {
		t.Errorf("a body over the bound: %v", err)
	}
}

// FuzzScanDecryptAnswer: the scanner never panics, and whatever it
// accepts, encoding/json reads the same way.
func FuzzScanDecryptAnswer(f *testing.F) {
	for _, s := range []string{
		`{"KeyId":"arn:k","Plaintext":"` + key32b64 + `","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}`,
		`{"Plaintext":"\u0041AAA","x":[1,{"y":null}]}`,
		`{"Plaintext":"AAAA"} `, `{}`, `[`, `{"a":-0.5e1,"Plaintext":""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := scanDecryptAnswer(body)
		if err != nil {
			return
		}
		// A map: member names match exactly, as for the scanner.
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
		}
		want, ok := v["Plaintext"].(string)
		if !ok {
			t.Fatalf("accepted %q without a Plaintext string", body)
		}
		raw := bytes.Clone(body[a.plaintext[0]:a.plaintext[1]])
		if got, err := unescapeASCII(raw); err == nil && string(got) != want {
			t.Fatalf("Plaintext %q, encoding/json says %q", got, want)
		}
		for name, tok := range map[string][2]int{"KeyId": a.keyID, "EncryptionAlgorithm": a.algorithm} {
			if tok[1] == 0 {
				if _, ok := v[name]; ok {
					t.Fatalf("%s missed in %q", name, body)
				}
				continue
			}
			var s string
			if err := json.Unmarshal(body[tok[0]:tok[1]], &s); err != nil || s != v[name] {
				t.Fatalf("%s %q, encoding/json says %v", name, body[tok[0]:tok[1]], v[name])
			}
		}
	})
}

// The middleware is the innermost of the Deserialize step, after the
// SDK's deserializer, and the SDK's deserializer never sees Plaintext.
func TestPlaintextMiddlewareInnermost(t *testing.T) {
	_, url := emulatorEnv(t, kmstest.Config{})
	c, err := New(context.Background(), Config{EndpointURL: url, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	api := c.api.(*kms.Client)
	enc, err := api.Encrypt(context.Background(), &kms.EncryptInput{KeyId: strPtr("alias/mariadb-a"), Plaintext: key32})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	var sdkSaw []byte
	spy := func(o *kms.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			order = stack.Deserialize.List()
			// Just outside the plaintext middleware: what it hands on.
			return stack.Deserialize.Insert(middleware.DeserializeMiddlewareFunc("spy", func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && err == nil {
					sdkSaw, _ = io.ReadAll(resp.Body)
					resp.Body = io.NopCloser(bytes.NewReader(sdkSaw))
				}
				return out, md, err
			}), plaintextMiddlewareID, middleware.Before)
		})
	}
	dst := make([]byte, 32)
	sink := &plaintextSink{dst: dst}
	out, err := api.Decrypt(withPlaintextSink(context.Background(), sink), &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}, append(c.decryptOpts, spy)...)
	if err != nil {
		t.Fatal(err)
	}
	if len(order) < 2 || order[len(order)-1] != plaintextMiddlewareID {
		t.Fatalf("Deserialize step %v: the plaintext middleware is not the innermost", order)
	}
	sdk := -1
	for i, id := range order {
		if id == "OperationDeserializer" {
			sdk = i
		}
	}
	if sdk < 0 {
		t.Fatalf("Deserialize step %v has no OperationDeserializer", order)
	}
	if !sink.filled || !bytes.Equal(dst[:sink.n], key32) {
		t.Errorf("key %x, want %x", dst[:sink.n], key32)
	}
	if out.Plaintext != nil {
		t.Errorf("the SDK returned Plaintext %x", out.Plaintext)
	}
	if bytes.Contains(sdkSaw, []byte("Plaintext")) || !bytes.Contains(sdkSaw, []byte(`"KeyId":"arn:aws:kms:`)) {
		t.Errorf("the SDK's deserializer read %s", sdkSaw)
	}
	if got := strPtrValue(out.KeyId); !strings.HasSuffix(got, ":key/1234abcd-0000-4000-8000-00000000000a") {
		t.Errorf("KeyId %q", got)
	}
	if out.EncryptionAlgorithm != "SYMMETRIC_DEFAULT" {
		t.Errorf("EncryptionAlgorithm %q", out.EncryptionAlgorithm)
	}
	// Through the Client: the key and the key ARN.
	n, keyID, err := c.DecryptWithKeyID(context.Background(), enc.CiphertextBlob, dst)
	if err != nil || !bytes.Equal(dst[:n], key32) || keyID != strPtrValue(out.KeyId) {
		t.Errorf("DecryptWithKeyID = %x, %q, %v", dst[:n], keyID, err)
	}
}

func strPtr(s string) *string { return &s }

func strPtrValue(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
