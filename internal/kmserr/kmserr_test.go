package kmserr_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mariadb-go/aws_key_management/internal/kmserr"
)

type apiErr struct{ code, msg string }

func (e apiErr) Error() string        { return "api error " + e.code + ": " + e.msg }
func (e apiErr) ErrorCode() string    { return e.code }
func (e apiErr) ErrorMessage() string { return e.msg }

func TestNewAndError(t *testing.T) {
	tests := []struct {
		name, op  string
		err       error
		want      string
		transient bool
		throttled bool
	}{
		{"wrapped api error", "GenerateDataKeyWithoutPlaintext", fmt.Errorf("generating: %w", apiErr{"DisabledException", "disabled"}),
			"KMS Client API 'GenerateDataKeyWithoutPlaintext' failed : DisabledException - disabled", false, false},
		{"api error wrapping a deadline", "Decrypt", fmt.Errorf("%w: %w", apiErr{"RequestCanceled", "m"}, context.DeadlineExceeded),
			"KMS Client API 'Decrypt' failed : RequestCanceled - m", false, false},
		{"deadline", "Decrypt", context.DeadlineExceeded,
			"KMS Client API 'Decrypt' failed : RequestTimeout - context deadline exceeded", true, false},
		{"wrapped deadline", "GenerateDataKeyWithoutPlaintext", fmt.Errorf("operation error KMS: %w", context.DeadlineExceeded),
			"KMS Client API 'GenerateDataKeyWithoutPlaintext' failed : RequestTimeout - operation error KMS: context deadline exceeded", true, false},
		{"network", "Decrypt", errors.New("dial tcp 127.0.0.1:1: connection refused"),
			"KMS Client API 'Decrypt' failed : RequestError - dial tcp 127.0.0.1:1: connection refused", true, false},
		{"canceled", "Decrypt", context.Canceled,
			"KMS Client API 'Decrypt' failed : RequestError - context canceled", false, false},
		{"throttled", "Decrypt", apiErr{"ThrottlingException", "Rate exceeded"},
			"KMS Client API 'Decrypt' failed : ThrottlingException - Rate exceeded", true, true},
		{"internal", "Decrypt", apiErr{"KMSInternalException", ""},
			"KMS Client API 'Decrypt' failed : KMSInternalException - ", true, false},
		{"invalid state", "Decrypt", apiErr{"KMSInvalidStateException", "pending import"},
			"KMS Client API 'Decrypt' failed : KMSInvalidStateException - pending import", true, false},
		{"access denied", "Decrypt", apiErr{"AccessDeniedException", "no"},
			"KMS Client API 'Decrypt' failed : AccessDeniedException - no", false, false},
		{"multi-line message", "Decrypt", apiErr{"KMSInternalException", "line one\nline two\r\n\tend\x00\x1b[31m"},
			`KMS Client API 'Decrypt' failed : KMSInternalException - line one\nline two\r\n\tend\x00\x1b[31m`, true, false},
		{"control characters in the exception name", "Decrypt", apiErr{"Bad\nName", "m"},
			`KMS Client API 'Decrypt' failed : Bad\nName - m`, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := kmserr.New(tc.op, tc.err)
			if got := e.Error(); got != tc.want {
				t.Errorf("Error() = %q\nwant      %q", got, tc.want)
			}
			if e.Transient() != tc.transient || e.Throttled() != tc.throttled {
				t.Errorf("Transient, Throttled = %v, %v; want %v, %v", e.Transient(), e.Throttled(), tc.transient, tc.throttled)
			}
			if !errors.Is(e, tc.err) {
				t.Errorf("the error does not wrap what the call returned")
			}
		})
	}
}

func TestNewKeepsAClassifiedError(t *testing.T) {
	e := kmserr.New("Decrypt", apiErr{"NotFoundException", "x"})
	if got := kmserr.New("Decrypt", fmt.Errorf("reading: %w", e)); got != e {
		t.Errorf("New re-wrapped an *Error of the same operation")
	}
	if kmserr.New("Decrypt", nil) != nil {
		t.Errorf("New(nil) is not nil")
	}
}

func TestFail(t *testing.T) {
	e := kmserr.Fail("Decrypt", "NotInBundle", "no key\nhere")
	if e.Error() != `KMS Client API 'Decrypt' failed : NotInBundle - no key\nhere` || e.Transient() {
		t.Errorf("Fail = %q, transient %v", e.Error(), e.Transient())
	}
}

func TestAdvice(t *testing.T) {
	for code, want := range map[string]string{
		"ExpiredTokenException": "the AWS session credentials have expired: keys already loaded keep working, but no new key can be created until the server has fresh credentials: restart it through iam-kms-wrapper",
		"DisabledException":     "the KMS master key is disabled: nothing can be wrapped or unwrapped with it until it is enabled (mariadb-aws-keys enable-key",
		"KMSInternalException":  "",
	} {
		got := kmserr.Fail("GenerateDataKeyWithoutPlaintext", code, "m").Advice()
		if !strings.HasPrefix(got, want) || (want == "") != (got == "") {
			t.Errorf("%s: %q", code, got)
		}
	}
}
