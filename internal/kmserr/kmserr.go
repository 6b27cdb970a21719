package kmserr

import (
	"context"
	"errors"
	"fmt"

	"github.com/mariadb-go/aws_key_management/internal/logtext"
)

// APIError is the shape of a KMS service error: smithy.APIError has it,
// and so does the mock's error type.
type APIError interface {
	error
	ErrorCode() string
	ErrorMessage() string
}

// Codes for failures that carry no exception name, as the C++ SDK names
// them.
const (
	CodeTimeout      = "RequestTimeout"
	CodeRequestError = "RequestError"
)

// MaxMessage bounds the message part of a logged failure, in bytes.
const MaxMessage = 1024

// Error is a failed KMS call.
type Error struct {
	Op      string // "Decrypt", "GenerateDataKeyWithoutPlaintext", ...
	Code    string // the exception name, or CodeTimeout/CodeRequestError
	Message string // the service's message or the error text, as received
	Err     error  // what the call returned
}

// New classifies err, a failure of operation op. A nil err gives nil.
func New(op string, err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Op == op {
		return e
	}
	var api APIError
	switch {
	case errors.As(err, &api):
		return &Error{Op: op, Code: api.ErrorCode(), Message: api.ErrorMessage(), Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Op: op, Code: CodeTimeout, Message: err.Error(), Err: err}
	default:
		return &Error{Op: op, Code: CodeRequestError, Message: err.Error(), Err: err}
	}
}

// Error renders the failure as the C++ plugin logged it, after its prefix
// "AWS KMS plugin : ": "KMS Client API 'Decrypt' failed : <Exception> -
// <message>", on one line (control characters escaped, the message cut at
// MaxMessage bytes).
func (e *Error) Error() string {
	return fmt.Sprintf("KMS Client API '%s' failed : %s - %s", e.Op, logtext.OneLine(e.Code, 64), logtext.OneLine(e.Message, MaxMessage))
}

func (e *Error) Unwrap() error { return e.Err }

// Throttled reports whether KMS asked the caller to slow down.
func (e *Error) Throttled() bool {
	switch e.Code {
	case "ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded",
		"TooManyRequestsException", "LimitExceededException":
		return true
	}
	return false
}

// Transient reports whether the same call may succeed if tried again
// later: throttling, KMS's own internal and dependency failures, a key in
// a transitional state, timeouts and network errors. A call the caller
// cancelled is not.
func (e *Error) Transient() bool {
	switch e.Code {
	case "KMSInternalException", "DependencyTimeoutException", "KMSInvalidStateException", CodeTimeout:
		return true
	case CodeRequestError:
		return !errors.Is(e.Err, context.Canceled)
	}
	return e.Throttled()
}

// Advice says, for the failures only the operator can fix, what the
// failure means and what to do; "" for the others. The plugin adds it to
// its error-log line and tells the client.
func (e *Error) Advice() string {
	switch e.Code {
	case "ExpiredTokenException", "ExpiredToken":
		return "the AWS session credentials have expired: keys already loaded keep working, but no new key can be created " +
			"until the server has fresh credentials: restart it through iam-kms-wrapper with a new MFA code " +
			"(or refresh the credentials it reads)"
	case "DisabledException":
		return "the KMS master key is disabled: nothing can be wrapped or unwrapped with it until it is enabled " +
			"(mariadb-aws-keys enable-key, or aws kms enable-key --key-id KEY)"
	}
	return ""
}

// failure is an exception of our own making (a backend that is not AWS).
type failure struct{ code, message string }

func (f failure) Error() string        { return f.code + ": " + f.message }
func (f failure) ErrorCode() string    { return f.code }
func (f failure) ErrorMessage() string { return f.message }

// Fail is a failed call of op with an exception name and message of the
// caller's choosing (not transient unless the name says so).
func Fail(op, code, message string) *Error {
	return New(op, failure{code, message})
}
