package mock_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/mock"
)

// wantKMSError fails unless err is a *mock.Error with the given code.
func wantKMSError(t *testing.T, err error, code string) *mock.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	var me *mock.Error
	if !errors.As(err, &me) {
		t.Fatalf("error %v (%T) is not a *mock.Error, want %s", err, err, code)
	}
	if me.Code != code {
		t.Fatalf("error code %q (%v), want %q", me.Code, err, code)
	}
	if me.ErrorCode() != code || me.ErrorMessage() != me.Message {
		t.Fatalf("ErrorCode/ErrorMessage = %q/%q, want %q/%q", me.ErrorCode(), me.ErrorMessage(), code, me.Message)
	}
	return me
}

func mustSeal(t testing.TB, cmk string, pt []byte) []byte {
	t.Helper()
	blob, err := mock.Seal(cmk, pt)
	if err != nil {
		t.Fatalf("Seal(%q): %v", cmk, err)
	}
	return blob
}

func TestSealOpenRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		cmk  string
		pt   []byte
	}{
		{"aes128", "1234abcd-12ab-34cd-56ef-1234567890ab", []byte("0123456789abcdef")},
		{"aes256", "alias/mariadb", bytes.Repeat([]byte("KEYBYTES"), 4)},
		{"one byte cmk", "k", []byte("sixteen byte key")},
		{"255 byte cmk", strings.Repeat("c", 255), []byte("sixteen byte key")},
		{"empty plaintext", "k", []byte{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			blob := mustSeal(t, tc.cmk, tc.pt)
			if len(tc.pt) > 0 && bytes.Contains(blob, tc.pt) {
				t.Errorf("blob %x contains the plaintext", blob)
			}
			got, err := mock.Open(blob)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.pt) {
				t.Errorf("Open = %x, want %x", got, tc.pt)
			}
			cmk, ok := mock.BlobMasterKey(blob)
			if !ok || cmk != tc.cmk {
				t.Errorf("BlobMasterKey = %q, %v; want %q, true", cmk, ok, tc.cmk)
			}
			// Two seals of the same key differ (fresh nonce) and both open.
			again := mustSeal(t, tc.cmk, tc.pt)
			if bytes.Equal(again, blob) {
				t.Errorf("two seals gave the same blob")
			}
			if got, err := mock.Open(again); err != nil || !bytes.Equal(got, tc.pt) {
				t.Errorf("Open(second seal) = %x, %v", got, err)
			}
		})
	}
}

func TestSealBadMasterKey(t *testing.T) {
	for _, cmk := range []string{"", strings.Repeat("c", 256)} {
		if blob, err := mock.Seal(cmk, []byte("0123456789abcdef")); err == nil {
			t.Errorf("Seal(cmk of %d bytes) = %x, nil; want an error", len(cmk), blob)
		}
	}
}

func TestOpenTamperedBlob(t *testing.T) {
	pt := []byte("0123456789abcdef")
	blob := mustSeal(t, "alias/k", pt)
	for i := range blob {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(blob)
			bad[i] ^= mask
			got, err := mock.Open(bad)
			if err == nil {
				t.Fatalf("byte %d ^ %#x: Open succeeded with %x", i, mask, got)
			}
			if got != nil {
				t.Errorf("byte %d: plaintext %x returned with error", i, got)
			}
			wantKMSError(t, err, "InvalidCiphertextException")
		}
	}
	// The blob itself was not damaged by the loop.
	if got, err := mock.Open(blob); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open(original) = %x, %v", got, err)
	}
}

func TestOpenGarbage(t *testing.T) {
	valid := mustSeal(t, "k1", []byte("0123456789abcdef"))
	other := mustSeal(t, "k2", []byte("0123456789abcdef"))
	// Same-length master key swapped in the header: the wrapping key and
	// the authenticated header no longer match.
	swapped := bytes.Clone(other)
	copy(swapped[len("AKMMOCK1")+1:], "k1")

	cases := map[string][]byte{
		"nil":              nil,
		"empty":            {},
		"one byte":         {0},
		"magic only":       []byte("AKMMOCK1"),
		"zero length cmk":  []byte("AKMMOCK1\x00xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
		"cmk past end":     []byte("AKMMOCK1\x10abc"),
		"header only":      []byte("AKMMOCK1\x02k1"),
		"no tag":           append([]byte("AKMMOCK1\x02k1"), make([]byte, 12)...),
		"wrong magic":      append([]byte("AKMMOCK2"), valid[8:]...),
		"random":           bytes.Repeat([]byte{0xa5, 0x5a, 0x00, 0xff}, 40),
		"plaintext key":    []byte("0123456789abcdef"),
		"cmk swapped":      swapped,
		"valid + trailing": append(bytes.Clone(valid), 0),
	}
	for i := 0; i < len(valid); i++ {
		cases[fmt.Sprintf("prefix %d", i)] = valid[:i]
	}
	for name, blob := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := mock.Open(blob)
			if got != nil {
				t.Errorf("plaintext %x returned", got)
			}
			wantKMSError(t, err, "InvalidCiphertextException")
		})
	}
	for _, b := range [][]byte{nil, []byte("AKMMOCK1"), []byte("AKMMOCK1\x00zz"), []byte("AKMMOCK1\x05ab"), []byte("XKMMOCK1\x02k1")} {
		if cmk, ok := mock.BlobMasterKey(b); ok {
			t.Errorf("BlobMasterKey(%q) = %q, true; want false", b, cmk)
		}
	}
}

func TestGenerateDataKeyWithoutPlaintext(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		spec string
		n    int
	}{{"AES_128", 16}, {"AES_256", 32}} {
		t.Run(tc.spec, func(t *testing.T) {
			k := mock.New()
			blob, err := k.GenerateDataKeyWithoutPlaintext(ctx, "alias/k", tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if cmk, ok := mock.BlobMasterKey(blob); !ok || cmk != "alias/k" {
				t.Errorf("BlobMasterKey = %q, %v", cmk, ok)
			}
			key, err := decrypt(k, ctx, blob)
			if err != nil {
				t.Fatal(err)
			}
			if len(key) != tc.n {
				t.Fatalf("key has %d bytes, want %d", len(key), tc.n)
			}
			if bytes.Equal(key, make([]byte, tc.n)) {
				t.Errorf("key is all zeros")
			}
			opened, err := mock.Open(blob)
			if err != nil || !bytes.Equal(opened, key) {
				t.Errorf("mock.Open = %x, %v; Decrypt gave %x", opened, err, key)
			}
			blob2, err := k.GenerateDataKeyWithoutPlaintext(ctx, "alias/k", tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			key2, err := mock.Open(blob2)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(key, key2) {
				t.Errorf("two generated keys are equal: %x", key)
			}
			if g, d := k.Calls(mock.OpGenerate), k.Calls(mock.OpDecrypt); g != 2 || d != 1 {
				t.Errorf("Calls = generate %d, decrypt %d; want 2, 1", g, d)
			}
		})
	}
}

func TestGenerateValidation(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, cmk, spec string
	}{
		{"AES_192", "k", "AES_192"},
		{"lower case", "k", "aes_128"},
		{"empty spec", "k", ""},
		{"empty key id", "", "AES_128"},
		{"key id too long", strings.Repeat("x", 256), "AES_256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := mock.New()
			blob, err := k.GenerateDataKeyWithoutPlaintext(ctx, tc.cmk, tc.spec)
			if blob != nil {
				t.Errorf("blob %x returned with error", blob)
			}
			wantKMSError(t, err, "ValidationException")
			if n := k.Calls(mock.OpGenerate); n != 1 {
				t.Errorf("Calls(Generate) = %d, want 1", n)
			}
		})
	}
}

func TestParseFaultsValid(t *testing.T) {
	key16, _ := hex.DecodeString("00112233445566778899aabbccddeeff")
	key32, _ := hex.DecodeString("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	tests := []struct {
		spec string
		want *mock.Faults
	}{
		{"", &mock.Faults{}},
		{"  ;; ; ", &mock.Faults{}},
		{"\t;\n ;\r\n", &mock.Faults{}},
		{"disable=k1", &mock.Faults{Disabled: map[string]bool{"k1": true}}},
		{" disable = alias/a ;disable=k2; ", &mock.Faults{Disabled: map[string]bool{"alias/a": true, "k2": true}}},
		{"fail=Decrypt:KMSInternalException:2", &mock.Faults{Fail: []mock.Failure{{Op: "Decrypt", Code: "KMSInternalException", Left: 2}}}},
		{"fail=*:ThrottlingException", &mock.Faults{Fail: []mock.Failure{{Op: "*", Code: "ThrottlingException", Left: -1}}}},
		{"fail=GenerateDataKeyWithoutPlaintext:DisabledException:1;\tfail=Decrypt:NotFoundException", &mock.Faults{Fail: []mock.Failure{
			{Op: mock.OpGenerate, Code: "DisabledException", Left: 1},
			{Op: mock.OpDecrypt, Code: "NotFoundException", Left: -1},
		}}},
		{"delay=Decrypt:150", &mock.Faults{Delay: map[string]time.Duration{"Decrypt": 150 * time.Millisecond}}},
		{"delay=*:0;delay=GenerateDataKeyWithoutPlaintext:600000", &mock.Faults{Delay: map[string]time.Duration{"*": 0, mock.OpGenerate: 10 * time.Minute}}},
		{"delay=Decrypt:10;delay=Decrypt:20", &mock.Faults{Delay: map[string]time.Duration{"Decrypt": 20 * time.Millisecond}}},
		{"datakey=00112233445566778899aabbccddeeff", &mock.Faults{DataKey: key16}},
		{"datakey=00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff", &mock.Faults{DataKey: key32}},
		{"\n disable=k ; fail=*:X:3 ; delay=*:5 ; datakey=00112233445566778899aabbccddeeff \n", &mock.Faults{
			Disabled: map[string]bool{"k": true},
			Fail:     []mock.Failure{{Op: "*", Code: "X", Left: 3}},
			Delay:    map[string]time.Duration{"*": 5 * time.Millisecond},
			DataKey:  key16,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := mock.ParseFaults(tc.spec)
			if err != nil {
				t.Fatalf("ParseFaults(%q): %v", tc.spec, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseFaults(%q) = %+v, want %+v", tc.spec, got, tc.want)
			}
		})
	}
}

func TestParseFaultsInvalid(t *testing.T) {
	tests := []struct {
		spec    string
		errText string // a part of the error message
	}{
		{"bogus=1", "unknown fault"},
		{"Disable=k", "unknown fault"},
		{"disable", "want name=value"},
		{"disable=", "needs a master key id"},
		{"disable=  ", "needs a master key id"},
		{"fail=Encrypt:X", "unknown operation"},
		{"fail=decrypt:X", "unknown operation"},
		{"fail=:X", "unknown operation"},
		{"fail=Decrypt", "want fail="},
		{"fail=Decrypt:", "want fail="},
		{"fail=Decrypt:X:1:2", "want fail="},
		{"fail=Decrypt:X:0", "not a positive number"},
		{"fail=Decrypt:X:-1", "not a positive number"},
		{"fail=Decrypt:X:two", "not a positive number"},
		{"fail=Decrypt:X:", "not a positive number"},
		{"delay=Decrypt", "want delay="},
		{"delay=Encrypt:10", "want delay="},
		{"delay=Decrypt:-5", "not in 0..600000"},
		{"delay=Decrypt:600001", "not in 0..600000"},
		{"delay=Decrypt:1.5", "not in 0..600000"},
		{"delay=Decrypt:", "not in 0..600000"},
		{"datakey=zz112233445566778899aabbccddeeff", "32 or 64 hex digits"},
		{"datakey=abc", "32 or 64 hex digits"},
		{"datakey=", "32 or 64 hex digits"},
		{"datakey=00112233445566778899aabbccddee", "32 or 64 hex digits"},                       // 15 bytes
		{"datakey=00112233445566778899aabbccddeeff0011223344556677", "32 or 64 hex digits"},     // 24 bytes
		{"datakey=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00", "32 or"}, // 33 bytes
		{"disable=k1;bogus", "want name=value"},
		{"disable=k1;fail=Decrypt:X:0", "not a positive number"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			f, err := mock.ParseFaults(tc.spec)
			if err == nil {
				t.Fatalf("ParseFaults(%q) = %+v, nil; want an error", tc.spec, f)
			}
			if f != nil {
				t.Errorf("ParseFaults(%q) returned faults %+v with its error", tc.spec, f)
			}
			if !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("ParseFaults(%q) error %q does not contain %q", tc.spec, err, tc.errText)
			}
		})
	}
}

func mustFaults(t *testing.T, spec string) *mock.Faults {
	t.Helper()
	f, err := mock.ParseFaults(spec)
	if err != nil {
		t.Fatalf("ParseFaults(%q): %v", spec, err)
	}
	return f
}

func TestFaultDisable(t *testing.T) {
	ctx := context.Background()
	k := mock.New()
	goodBlob, err := k.GenerateDataKeyWithoutPlaintext(ctx, "good", "AES_128")
	if err != nil {
		t.Fatal(err)
	}
	badBlob, err := k.GenerateDataKeyWithoutPlaintext(ctx, "bad", "AES_128")
	if err != nil {
		t.Fatal(err)
	}
	k.SetFaults(mustFaults(t, "disable=bad"))

	const arn = "arn:aws:kms:us-east-1:000000000000:key/bad"
	blob, err := k.GenerateDataKeyWithoutPlaintext(ctx, "bad", "AES_256")
	if blob != nil {
		t.Errorf("Generate under a disabled key returned a blob")
	}
	if e := wantKMSError(t, err, "DisabledException"); !strings.Contains(e.Message, arn) {
		t.Errorf("message %q does not contain %q", e.Message, arn)
	}
	key, err := decrypt(k, ctx, badBlob)
	if key != nil {
		t.Errorf("Decrypt under a disabled key returned a key")
	}
	if e := wantKMSError(t, err, "DisabledException"); !strings.Contains(e.Message, arn) {
		t.Errorf("message %q does not contain %q", e.Message, arn)
	}

	// Other master keys are not affected.
	if _, err := decrypt(k, ctx, goodBlob); err != nil {
		t.Errorf("Decrypt under an enabled key: %v", err)
	}
	if _, err := k.GenerateDataKeyWithoutPlaintext(ctx, "good", "AES_128"); err != nil {
		t.Errorf("Generate under an enabled key: %v", err)
	}
	// Garbage is still InvalidCiphertextException, not DisabledException.
	_, err = decrypt(k, ctx, []byte("garbage"))
	wantKMSError(t, err, "InvalidCiphertextException")

	// Clearing the faults enables the key again.
	k.SetFaults(nil)
	if _, err := decrypt(k, ctx, badBlob); err != nil {
		t.Errorf("Decrypt after SetFaults(nil): %v", err)
	}
	if g, d := k.Calls(mock.OpGenerate), k.Calls(mock.OpDecrypt); g != 4 || d != 4 {
		t.Errorf("Calls = generate %d, decrypt %d; want 4, 4", g, d)
	}
}

func TestFaultFailCount(t *testing.T) {
	ctx := context.Background()
	k := mock.New()
	blob, err := k.GenerateDataKeyWithoutPlaintext(ctx, "k", "AES_128")
	if err != nil {
		t.Fatal(err)
	}
	f := mustFaults(t, "fail=Decrypt:KMSInternalException:2")
	k.SetFaults(f)
	for i := 1; i <= 2; i++ {
		key, err := decrypt(k, ctx, blob)
		if key != nil {
			t.Errorf("call %d returned a key with its error", i)
		}
		e := wantKMSError(t, err, "KMSInternalException")
		if !strings.Contains(e.Message, "Decrypt") {
			t.Errorf("message %q does not name the operation", e.Message)
		}
	}
	// Generate is not affected by a Decrypt failure.
	if _, err := k.GenerateDataKeyWithoutPlaintext(ctx, "k", "AES_128"); err != nil {
		t.Fatalf("Generate: %v", err)
	}
	for i := 3; i <= 5; i++ {
		if _, err := decrypt(k, ctx, blob); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := k.Calls(mock.OpDecrypt); n != 5 {
		t.Errorf("Calls(Decrypt) = %d, want 5 (failed calls count)", n)
	}
	// SetFaults copies: the caller's Faults was not counted down, so
	// setting it again fails twice more.
	if f.Fail[0].Left != 2 {
		t.Errorf("caller's Faults was modified: Left = %d", f.Fail[0].Left)
	}
	k.SetFaults(f)
	for i := 0; i < 2; i++ {
		_, err := decrypt(k, ctx, blob)
		wantKMSError(t, err, "KMSInternalException")
	}
	if _, err := decrypt(k, ctx, blob); err != nil {
		t.Fatal(err)
	}
}

func TestFaultFailForGood(t *testing.T) {
	ctx := context.Background()
	k := mock.New()
	blob := mustSeal(t, "k", []byte("0123456789abcdef"))
	k.SetFaults(mustFaults(t, "fail=*:ThrottlingException"))
	for i := 0; i < 10; i++ {
		_, err := k.GenerateDataKeyWithoutPlaintext(ctx, "k", "AES_128")
		wantKMSError(t, err, "ThrottlingException")
		_, err = decrypt(k, ctx, blob)
		wantKMSError(t, err, "ThrottlingException")
	}
}

func TestFaultFailOrder(t *testing.T) {
	ctx := context.Background()
	k := mock.New()
	blob := mustSeal(t, "k", []byte("0123456789abcdef"))
	k.SetFaults(mustFaults(t, "fail=Decrypt:A:1;fail=*:B:1"))
	// Generate skips the Decrypt entry and takes the wildcard one.
	_, err := k.GenerateDataKeyWithoutPlaintext(ctx, "k", "AES_128")
	wantKMSError(t, err, "B")
	_, err = decrypt(k, ctx, blob)
	wantKMSError(t, err, "A")
	// Both used up.
	if _, err := decrypt(k, ctx, blob); err != nil {
		t.Errorf("Decrypt: %v", err)
	}
	if _, err := k.GenerateDataKeyWithoutPlaintext(ctx, "k", "AES_128"); err != nil {
		t.Errorf("Generate: %v", err)
	}
}

func TestFaultDelay(t *testing.T) {
	blob := mustSeal(t, "k", []byte("0123456789abcdef"))
	k := mock.New()
	k.SetFaults(mustFaults(t, "delay=Decrypt:40"))
	start := time.Now()
	if _, err := decrypt(k, context.Background(), blob); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("Decrypt took %v, want at least 40ms", d)
	}

	// An operation's own delay takes precedence over "*".
	k.SetFaults(mustFaults(t, "delay=*:5000;delay=Decrypt:0"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := decrypt(k, ctx, blob); err != nil {
		t.Fatalf("Decrypt with delay=Decrypt:0 failed: %v", err)
	}
}

func TestFaultDelayCancelled(t *testing.T) {
	blob := mustSeal(t, "k", []byte("0123456789abcdef"))
	ops := map[string]func(*mock.KMS, context.Context) ([]byte, error){
		mock.OpGenerate: func(k *mock.KMS, ctx context.Context) ([]byte, error) {
			return k.GenerateDataKeyWithoutPlaintext(ctx, "k", "AES_128")
		},
		mock.OpDecrypt: func(k *mock.KMS, ctx context.Context) ([]byte, error) {
			return decrypt(k, ctx, blob)
		},
	}
	for _, spec := range []string{"delay=*:5000", "delay=GenerateDataKeyWithoutPlaintext:5000;delay=Decrypt:5000"} {
		for op, call := range ops {
			t.Run(spec+"/"+op, func(t *testing.T) {
				k := mock.New()
				k.SetFaults(mustFaults(t, spec))
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				defer cancel()
				start := time.Now()
				out, err := call(k, ctx)
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("%s returned after %v; the context allowed 50ms", op, d)
				}
				if out != nil {
					t.Errorf("%s returned data with a cancelled context", op)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s error = %v, want one wrapping context.DeadlineExceeded", op, err)
				}
				if n := k.Calls(op); n != 1 {
					t.Errorf("Calls(%s) = %d, want 1", op, n)
				}
			})
		}
	}
}

func TestFaultDataKey(t *testing.T) {
	ctx := context.Background()
	key16, _ := hex.DecodeString("00112233445566778899aabbccddeeff")
	key32, _ := hex.DecodeString("ffeeddccbbaa99887766554433221100f0e1d2c3b4a5968778695a4b3c2d1e0f")
	tests := []struct {
		datakey []byte
		spec    string
		want    []byte
	}{
		{key16, "AES_128", key16},
		{key16, "AES_256", append(bytes.Clone(key16), make([]byte, 16)...)}, // zero-padded
		{key32, "AES_256", key32},
		{key32, "AES_128", key32[:16]},
	}
	for _, tc := range tests {
		t.Run(tc.spec+"/"+hex.EncodeToString(tc.datakey[:2]), func(t *testing.T) {
			k := mock.New()
			k.SetFaults(mustFaults(t, "datakey="+hex.EncodeToString(tc.datakey)))
			for i := 0; i < 2; i++ {
				blob, err := k.GenerateDataKeyWithoutPlaintext(ctx, "k", tc.spec)
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(blob, tc.want) {
					t.Errorf("blob contains the plaintext")
				}
				got, err := decrypt(k, ctx, blob)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tc.want) {
					t.Errorf("key = %x, want %x", got, tc.want)
				}
			}
		})
	}
	// Without datakey the plaintext is random again.
	k := mock.New()
	k.SetFaults(mustFaults(t, "datakey="+hex.EncodeToString(key16)))
	k.SetFaults(nil)
	blob, err := k.GenerateDataKeyWithoutPlaintext(ctx, "k", "AES_128")
	if err != nil {
		t.Fatal(err)
	}
	got, err := mock.Open(blob)
	if err != nil {
		t.Fatalf("Open of the data key's blob: %v", err)
	}
	if len(got) != 16 {
		t.Fatalf("AES_128 data key of %d bytes", len(got))
	}
	if bytes.Equal(got, key16) {
		t.Errorf("datakey still applies after SetFaults(nil)")
	}
}

func TestCallsConcurrent(t *testing.T) {
	ctx := context.Background()
	k := mock.New()
	blob := mustSeal(t, "k", []byte("0123456789abcdef"))
	if k.Calls(mock.OpDecrypt) != 0 || k.Calls(mock.OpGenerate) != 0 || k.Calls("Encrypt") != 0 {
		t.Fatalf("a new mock has calls")
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := decrypt(k, ctx, blob); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := k.GenerateDataKeyWithoutPlaintext(ctx, "k", "AES_256"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if g, d := k.Calls(mock.OpGenerate), k.Calls(mock.OpDecrypt); g != n || d != n {
		t.Errorf("Calls = generate %d, decrypt %d; want %d, %d", g, d, n, n)
	}
}

func FuzzOpen(f *testing.F) {
	valid, err := mock.Seal("alias/fuzz", []byte("0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte("AKMMOCK1"))
	f.Add([]byte("AKMMOCK1\x02k1"))
	f.Add([]byte("AKMMOCK1\xffk1"))
	f.Add([]byte("AKMMOCK1\x00"))
	f.Fuzz(func(t *testing.T, blob []byte) {
		pt, err := mock.Open(blob)
		if err != nil {
			if pt != nil {
				t.Errorf("plaintext with error")
			}
			var me *mock.Error
			if !errors.As(err, &me) || me.Code != "InvalidCiphertextException" {
				t.Errorf("Open error %v, want InvalidCiphertextException", err)
			}
		}
		cmk, ok := mock.BlobMasterKey(blob)
		if err == nil && (!ok || cmk == "") {
			t.Errorf("Open succeeded but BlobMasterKey = %q, %v", cmk, ok)
		}
	})
}

// fail=<Op>:Panic makes the operation panic (the plugin's recover paths
// are tested with it), count times.
func TestFaultPanic(t *testing.T) {
	k := mock.New()
	f, err := mock.ParseFaults("fail=GenerateDataKeyWithoutPlaintext:Panic:1")
	if err != nil {
		t.Fatal(err)
	}
	k.SetFaults(f)
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("no panic")
			}
		}()
		k.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/x", "AES_128")
	}()
	if _, err := k.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/x", "AES_128"); err != nil {
		t.Fatalf("after the one panic: %v", err)
	}
}

// decrypt is Decrypt with the key returned in a slice of its own.
func decrypt(k *mock.KMS, ctx context.Context, blob []byte) ([]byte, error) {
	dst := make([]byte, 32)
	n, err := k.Decrypt(ctx, blob, dst)
	if err != nil {
		return nil, err
	}
	return dst[:n], nil
}

// Attempts counts calls and the injected throttling, per operation.
func TestAttempts(t *testing.T) {
	k := mock.New()
	f, err := mock.ParseFaults("fail=Decrypt:ThrottlingException:2;fail=GenerateDataKeyWithoutPlaintext:KMSInternalException:1")
	if err != nil {
		t.Fatal(err)
	}
	k.SetFaults(f)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		k.GenerateDataKeyWithoutPlaintext(ctx, "m", "AES_128")
	}
	blob, err := k.GenerateDataKeyWithoutPlaintext(ctx, "m", "AES_128")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		decrypt(k, ctx, blob)
	}
	if a, r, th := k.Attempts(mock.OpDecrypt); a != 3 || r != 0 || th != 2 {
		t.Errorf("Decrypt: %d, %d, %d; want 3 attempts, 2 throttled", a, r, th)
	}
	if a, _, th := k.Attempts(mock.OpGenerate); a != 4 || th != 0 {
		t.Errorf("Generate: %d attempts, %d throttled; want 4, 0", a, th)
	}
}
