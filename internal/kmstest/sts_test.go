package kmstest

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

const (
	testSerial = "arn:aws:iam::123456789012:mfa/dba"
	testCode   = "123456"
)

// stsClient is a real aws-sdk-go-v2 STS client for url with the test's
// static credentials, one attempt per call.
func stsClient(url string) *sts.Client {
	return sts.NewFromConfig(aws.Config{
		Region:      testRegion,
		Credentials: credentials.NewStaticCredentialsProvider(testAKID, testSecret, ""),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	}, func(o *sts.Options) { o.BaseEndpoint = aws.String(url) })
}

func sessionClient(t *testing.T, url string, out *sts.GetSessionTokenOutput) *kms.Client {
	c := out.Credentials
	return client(t, url, withAKID(*c.AccessKeyId), withSecret(*c.SecretAccessKey), withToken(*c.SessionToken))
}

func TestGetSessionToken(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{MFADevices: map[string]string{testSerial: testCode}})
	s.CreateKey("k")
	cx := ctx(t)
	st := stsClient(url)

	before := time.Now()
	out := must(st.GetSessionToken(cx, &sts.GetSessionTokenInput{
		DurationSeconds: aws.Int32(900), SerialNumber: aws.String(testSerial), TokenCode: aws.String(testCode),
	})).ok(t)
	c := out.Credentials
	if !strings.HasPrefix(*c.AccessKeyId, "ASIA") || len(*c.AccessKeyId) != 20 || *c.SecretAccessKey == "" || len(*c.SessionToken) < 100 {
		t.Errorf("credentials: %q, secret %d bytes, token %d bytes", *c.AccessKeyId, len(*c.SecretAccessKey), len(*c.SessionToken))
	}
	if d := c.Expiration.Sub(before); d < 899*time.Second || d > 905*time.Second {
		t.Errorf("expires in %v, want 900 s", d)
	}
	// The session's credentials work on KMS, with their token only.
	in := &kms.DescribeKeyInput{KeyId: aws.String("k")}
	must(sessionClient(t, url, out).DescribeKey(cx, in)).ok(t)
	_, err := client(t, url, withAKID(*c.AccessKeyId), withSecret(*c.SecretAccessKey)).DescribeKey(cx, in)
	wantCode(t, err, "UnrecognizedClientException")
	_, err = client(t, url, withAKID(*c.AccessKeyId), withSecret("wrong"), withToken(*c.SessionToken)).DescribeKey(cx, in)
	wantCode(t, err, "InvalidSignatureException")

	// Default duration: 12 hours, as AWS.
	out2 := must(st.GetSessionToken(cx, &sts.GetSessionTokenInput{})).ok(t)
	if d := out2.Credentials.Expiration.Sub(before); d < 43199*time.Second || d > 43205*time.Second {
		t.Errorf("default duration %v, want 43200 s", d)
	}

	// A session's credentials cannot ask for another session.
	sess := sts.NewFromConfig(aws.Config{
		Region:      testRegion,
		Credentials: credentials.NewStaticCredentialsProvider(*c.AccessKeyId, *c.SecretAccessKey, *c.SessionToken),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	}, func(o *sts.Options) { o.BaseEndpoint = aws.String(url) })
	_, err = sess.GetSessionToken(cx, &sts.GetSessionTokenInput{})
	if ae := wantCode(t, err, "AccessDenied"); ae.ErrorMessage() != msgSessionCall {
		t.Errorf("message %q", ae.ErrorMessage())
	}
	if calls := s.Calls()["GetSessionToken"]; calls != 3 {
		t.Errorf("GetSessionToken calls = %d, want 3", calls)
	}
}

func TestGetSessionTokenRefusals(t *testing.T) {
	t.Parallel()
	_, url := emu(t, Config{MFADevices: map[string]string{testSerial: testCode}})
	cx := ctx(t)
	st := stsClient(url)
	cases := []struct {
		name     string
		in       sts.GetSessionTokenInput
		code     string
		message  string
		httpCode int
	}{
		{"wrong code", sts.GetSessionTokenInput{SerialNumber: aws.String(testSerial), TokenCode: aws.String("654321")},
			"AccessDenied", "MultiFactorAuthentication failed with invalid MFA one time pass code. ", 403},
		{"unknown device", sts.GetSessionTokenInput{SerialNumber: aws.String("arn:aws:iam::123456789012:mfa/other"), TokenCode: aws.String(testCode)},
			"AccessDenied", msgBadMFASerial, 403},
		{"code without device", sts.GetSessionTokenInput{TokenCode: aws.String(testCode)},
			"AccessDenied", msgBadMFASerial, 403},
		{"code not digits", sts.GetSessionTokenInput{SerialNumber: aws.String(testSerial), TokenCode: aws.String("12a456")},
			"ValidationError", "1 validation error detected: Value '12a456' at 'tokenCode' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\d]* and have length 6", 400},
		{"too short", sts.GetSessionTokenInput{DurationSeconds: aws.Int32(899)},
			"ValidationError", "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900", 400},
		{"too long", sts.GetSessionTokenInput{DurationSeconds: aws.Int32(129601)},
			"ValidationError", "1 validation error detected: Value '129601' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 129600", 400},
	}
	for _, tc := range cases {
		_, err := st.GetSessionToken(cx, &tc.in)
		ae := wantCode(t, err, tc.code)
		if ae.ErrorMessage() != tc.message || httpStatus(err) != tc.httpCode {
			t.Errorf("%s: HTTP %d %q, want %d %q", tc.name, httpStatus(err), ae.ErrorMessage(), tc.httpCode, tc.message)
		}
	}
	// The bounds themselves are accepted.
	for _, d := range []int32{900, 129600} {
		must(st.GetSessionToken(cx, &sts.GetSessionTokenInput{DurationSeconds: aws.Int32(d)})).ok(t)
	}
	// Unknown static credentials: STS's own code for it.
	bad := sts.NewFromConfig(aws.Config{
		Region:      testRegion,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDUNKNOWN", testSecret, ""),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	}, func(o *sts.Options) { o.BaseEndpoint = aws.String(url) })
	_, err := bad.GetSessionToken(cx, &sts.GetSessionTokenInput{})
	wantCode(t, err, "InvalidClientTokenId")
}

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	s.CreateKey("k")
	cx := ctx(t)
	out := must(stsClient(url).GetSessionToken(cx, &sts.GetSessionTokenInput{DurationSeconds: aws.Int32(900)})).ok(t)
	kc := sessionClient(t, url, out)
	gen := &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String("k"), NumberOfBytes: aws.Int32(32)}
	must(kc.GenerateDataKeyWithoutPlaintext(cx, gen)).ok(t)
	if n := s.ExpireSessions(); n != 1 {
		t.Errorf("ExpireSessions = %d, want 1", n)
	}
	_, err := kc.GenerateDataKeyWithoutPlaintext(cx, gen)
	if ae := wantCode(t, err, "ExpiredTokenException"); ae.ErrorMessage() != "The security token included in the request is expired" || httpStatus(err) != 400 {
		t.Errorf("HTTP %d, message %q", httpStatus(err), ae.ErrorMessage())
	}
	// The static credentials are untouched.
	must(client(t, url).GenerateDataKeyWithoutPlaintext(cx, gen)).ok(t)
}

func TestRequireMFAPolicy(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{MFADevices: map[string]string{testSerial: testCode}, RequireMFA: true})
	s.CreateKey("k")
	cx := ctx(t)
	st := stsClient(url)
	withMFA := sessionClient(t, url, must(st.GetSessionToken(cx, &sts.GetSessionTokenInput{
		SerialNumber: aws.String(testSerial), TokenCode: aws.String(testCode)})).ok(t))
	noMFA := sessionClient(t, url, must(st.GetSessionToken(cx, &sts.GetSessionTokenInput{})).ok(t))
	static := client(t, url)

	gen := &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String("k"), NumberOfBytes: aws.Int32(32)}
	blob := must(withMFA.GenerateDataKeyWithoutPlaintext(cx, gen)).ok(t).CiphertextBlob
	must(withMFA.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob})).ok(t)
	for name, c := range map[string]*kms.Client{"static": static, "session without MFA": noMFA} {
		_, err := c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob})
		if ae := wantCode(t, err, "AccessDeniedException"); !strings.Contains(ae.ErrorMessage(), "kms:Decrypt") {
			t.Errorf("%s: message %q", name, ae.ErrorMessage())
		}
		_, err = c.GenerateDataKeyWithoutPlaintext(cx, gen)
		wantCode(t, err, "AccessDeniedException")
		_, err = c.GenerateDataKey(cx, &kms.GenerateDataKeyInput{KeyId: aws.String("k"), NumberOfBytes: aws.Int32(32)})
		wantCode(t, err, "AccessDeniedException")
		// The policy covers the key's use, not its management.
		must(c.DescribeKey(cx, &kms.DescribeKeyInput{KeyId: aws.String("k")})).ok(t)
	}
	s.SetRequireMFA(false)
	must(static.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob})).ok(t)
}

func TestDisabledKeyWithSession(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{MFADevices: map[string]string{testSerial: testCode}})
	arn := s.CreateKey("k")
	cx := ctx(t)
	kc := sessionClient(t, url, must(stsClient(url).GetSessionToken(cx, &sts.GetSessionTokenInput{
		SerialNumber: aws.String(testSerial), TokenCode: aws.String(testCode)})).ok(t))
	gen := &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String("k"), NumberOfBytes: aws.Int32(32)}
	blob := must(kc.GenerateDataKeyWithoutPlaintext(cx, gen)).ok(t).CiphertextBlob
	must(kc.DisableKey(cx, &kms.DisableKeyInput{KeyId: aws.String("k")})).ok(t)
	if d := must(kc.DescribeKey(cx, &kms.DescribeKeyInput{KeyId: aws.String("k")})).ok(t); d.KeyMetadata.Enabled || d.KeyMetadata.KeyState != "Disabled" {
		t.Errorf("after DisableKey: enabled %v, state %s", d.KeyMetadata.Enabled, d.KeyMetadata.KeyState)
	}
	_, err := kc.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob})
	if ae := wantCode(t, err, "DisabledException"); ae.ErrorMessage() != arn+" is disabled." {
		t.Errorf("message %q", ae.ErrorMessage())
	}
	_, err = kc.GenerateDataKeyWithoutPlaintext(cx, gen)
	wantCode(t, err, "DisabledException")
	must(kc.EnableKey(cx, &kms.EnableKeyInput{KeyId: aws.String("k")})).ok(t)
	must(kc.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob})).ok(t)
}

func TestSTSControl(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	s.CreateKey("k")
	cx := ctx(t)
	st := stsClient(url)
	in := &sts.GetSessionTokenInput{SerialNumber: aws.String(testSerial), TokenCode: aws.String("111111")}
	_, err := st.GetSessionToken(cx, in)
	wantCode(t, err, "AccessDenied")
	if code, body := ctl(t, "POST", url+"/_emulator/mfa-devices", `{"SerialNumber":"`+testSerial+`","Code":"111111"}`); code != 204 {
		t.Fatalf("mfa-devices: %d %q", code, body)
	}
	if code, _ := ctl(t, "POST", url+"/_emulator/mfa-devices", `{"SerialNumber":"`+testSerial+`","Code":"12345"}`); code != 400 {
		t.Errorf("a five-digit code: %d, want 400", code)
	}
	kc := sessionClient(t, url, must(st.GetSessionToken(cx, in)).ok(t))
	gen := &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String("k"), NumberOfBytes: aws.Int32(32)}

	if code, _ := ctl(t, "POST", url+"/_emulator/require-mfa", "on"); code != 204 {
		t.Fatalf("require-mfa on: %d", code)
	}
	_, err = client(t, url).GenerateDataKeyWithoutPlaintext(cx, gen)
	wantCode(t, err, "AccessDeniedException")
	must(kc.GenerateDataKeyWithoutPlaintext(cx, gen)).ok(t)
	if code, _ := ctl(t, "POST", url+"/_emulator/require-mfa", "maybe"); code != 400 {
		t.Errorf("require-mfa maybe: %d, want 400", code)
	}
	if code, body := ctl(t, "POST", url+"/_emulator/sessions/expire", ""); code != 200 || body != "1\n" {
		t.Errorf("sessions/expire: %d %q", code, body)
	}
	_, err = kc.GenerateDataKeyWithoutPlaintext(cx, gen)
	wantCode(t, err, "ExpiredTokenException")
	if code, _ := ctl(t, "POST", url+"/_emulator/require-mfa", "off"); code != 204 {
		t.Fatalf("require-mfa off: %d", code)
	}
	must(client(t, url).GenerateDataKeyWithoutPlaintext(cx, gen)).ok(t)
}
