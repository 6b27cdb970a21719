package kmsbackend

import (
	"context"
	"errors"
	"fmt"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/mariadb-go/aws_key_management/internal/kmserr"
	"github.com/mariadb-go/aws_key_management/internal/logtext"
)

// LogLevel is aws_key_management_log_level: Off(0) .. Trace(6), as the
// C++ SDK numbers them.
type LogLevel int

// Levels of aws_key_management_log_level.
const (
	LogOff LogLevel = iota
	LogFatal
	LogError
	LogWarn
	LogInfo
	LogDebug
	LogTrace
)

var levelNames = [...]string{"Off", "Fatal", "Error", "Warn", "Info", "Debug", "Trace"}

func (l LogLevel) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return fmt.Sprintf("LogLevel(%d)", int(l))
	}
	return levelNames[l]
}

// Logger receives request log lines with the level they were logged at.
// Level tells the current aws_key_management_log_level (it is dynamic).
//
// What is logged, by design, is a fixed set of fields: operation, attempt,
// HTTP status, duration, request id, exception name and the endpoint host.
// Never headers (they carry the signature and session token), never
// bodies (they carry ciphertext blobs and plaintext keys).
type Logger struct {
	Level func() LogLevel
	Print func(level LogLevel, msg string)
	// Endpoint names the endpoint in lines where the request does not
	// (New sets it). A user:password@ part is never printed.
	Endpoint string
}

func (l *Logger) enabled(level LogLevel) bool {
	return l != nil && l.Level != nil && l.Print != nil && level != LogOff && l.Level() >= level
}

// maxLine bounds a request log line; errorSummary's parts are bounded
// below it.
const maxLine = 2048

func (l *Logger) printf(level LogLevel, format string, args ...any) {
	if l.enabled(level) {
		// One line whatever the arguments hold (the SDK's own messages
		// included).
		l.Print(level, logtext.OneLine(fmt.Sprintf("[%s] ", level)+fmt.Sprintf(format, args...), maxLine))
	}
}

// sdkLogger takes the SDK's own messages (warnings such as clock skew) at
// Warn and Debug. The SDK's request/response dumps stay off
// (ClientLogMode 0): they would show headers.
type sdkLogger struct{ l *Logger }

func (s sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := LogDebug
	if c == logging.Warn {
		level = LogWarn
	}
	s.l.printf(level, "SDK: "+format, v...)
}

type attemptKey struct{}

// addLogging installs two middlewares: one around the whole call (Info:
// outcome and duration; Error: failures), one around each HTTP attempt
// (Warn: retried failures; Debug: every attempt; Trace: sizes too).
func (l *Logger) addLogging(stack *middleware.Stack) error {
	call := middleware.FinalizeMiddlewareFunc("AKMCallLog", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		op := awsmiddleware.GetOperationName(ctx)
		attempts := new(int)
		ctx = context.WithValue(ctx, attemptKey{}, attempts)
		start := time.Now()
		out, md, err := next.HandleFinalize(ctx, in)
		took := time.Since(start).Round(time.Millisecond)
		if err != nil {
			l.printf(LogError, "KMS %s failed after %d attempt(s) in %v: %s", op, *attempts, took, errorSummary(err))
		} else {
			l.printf(LogInfo, "KMS %s succeeded after %d attempt(s) in %v", op, *attempts, took)
		}
		return out, md, err
	})
	attempt := middleware.FinalizeMiddlewareFunc("AKMAttemptLog", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		op := awsmiddleware.GetOperationName(ctx)
		n := 0
		if p, ok := ctx.Value(attemptKey{}).(*int); ok {
			*p++
			n = *p
		}
		start := time.Now()
		out, md, err := next.HandleFinalize(ctx, in)
		took := time.Since(start).Round(time.Millisecond)
		// The endpoint is resolved further down the stack, on this
		// request: read it after the attempt.
		host, reqLen := l.Endpoint, int64(-1)
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			if req.URL != nil && req.URL.Host != "" {
				host = req.URL.Host
			}
			reqLen = req.ContentLength
		}
		host = RedactEndpoint(host)
		status, respLen := 0, int64(-1)
		if resp, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok && resp != nil {
			status, respLen = resp.StatusCode, resp.ContentLength
		}
		var re interface {
			HTTPStatusCode() int
			ServiceRequestID() string
		}
		reqID, _ := awsmiddleware.GetRequestIDMetadata(md)
		if err != nil && errors.As(err, &re) {
			status, reqID = re.HTTPStatusCode(), re.ServiceRequestID()
		}
		switch {
		case err != nil:
			l.printf(LogWarn, "KMS %s attempt %d to %s: %s (HTTP %d, %v, request id %q)", op, n, host, errorSummary(err), status, took, reqID)
		case l.enabled(LogTrace):
			l.printf(LogTrace, "KMS %s attempt %d to %s: HTTP %d in %v, request id %q, %d bytes sent, %d bytes received", op, n, host, status, took, reqID, reqLen, respLen)
		default:
			l.printf(LogDebug, "KMS %s attempt %d to %s: HTTP %d in %v, request id %q", op, n, host, status, took, reqID)
		}
		return out, md, err
	})
	if err := stack.Finalize.Insert(call, "Retry", middleware.Before); err != nil {
		return fmt.Errorf("adding call logging: %w", err)
	}
	if err := stack.Finalize.Insert(attempt, "Retry", middleware.After); err != nil {
		return fmt.Errorf("adding attempt logging: %w", err)
	}
	return nil
}

// errorSummary names a failure without dumping responses: the exception
// and its message for service errors (and the plugin's own refusals of an
// answer), the error text otherwise; on one line and bounded, like the
// plugin's KMS error line (kmserr), since KMS or whatever answers at the
// endpoint writes the message.
func errorSummary(err error) string {
	var api kmserr.APIError
	if errors.As(err, &api) {
		return logtext.OneLine(api.ErrorCode(), 64) + ": " + logtext.OneLine(api.ErrorMessage(), kmserr.MaxMessage)
	}
	return logtext.OneLine(err.Error(), kmserr.MaxMessage)
}
