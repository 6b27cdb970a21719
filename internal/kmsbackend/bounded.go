package kmsbackend

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
)

// MaxResponseBody bounds the body of every KMS answer, in bytes. The
// largest answer of the two calls the plugin makes is a few kilobytes (a
// CiphertextBlob of at most 6144 bytes, base64-encoded); anything larger
// is refused before it is read, so a broken or hostile endpoint cannot
// make the server run out of memory (a fatal error in Go, which would take
// mariadbd down with it).
const MaxResponseBody = 64 << 10

// maxResponseHeader bounds the header block of a KMS answer (net/http's
// default is 10 MB).
const maxResponseHeader = 64 << 10

// httpDoer is what the SDK needs of an HTTP client (aws.HTTPClient).
type httpDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// boundedClient limits every response body it hands the SDK to max bytes:
// a larger Content-Length is refused at once, and a body that runs past
// max without announcing its length fails on the read that crosses it.
type boundedClient struct {
	next httpDoer
	max  int64
}

func (c boundedClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = readCloserOnly{req.Body}
	}
	resp, err := c.next.Do(req)
	if err != nil || resp == nil {
		return resp, err
	}
	op := operationOf(req)
	if resp.ContentLength > c.max {
		resp.Body.Close()
		return nil, &ResponseTooLargeError{Op: op, Limit: c.max, ContentLength: resp.ContentLength}
	}
	resp.Body = &limitedBody{body: resp.Body, left: c.max, op: op, max: c.max}
	return resp, nil
}

// readCloserOnly hides the WriteTo method of the SDK's request body.
// The SDK closes that body as soon as Do returns, which can be before
// net/http's writer has made its final check that the body holds nothing
// beyond its Content-Length; that check copies with WriteTo, which after
// the close returns io.EOF as an error, so net/http counts the request as
// not fully written and drops the connection instead of keeping it alive
// (about one call in ten on loopback). Read returns a plain io.EOF after
// the close: the check passes and the connection is reused, so the next
// answer overwrites the previous one in the connection's read buffers.
type readCloserOnly struct{ io.ReadCloser }

// operationOf names the KMS operation of a request: from the SDK's
// context, else from the JSON protocol's X-Amz-Target header.
func operationOf(req *http.Request) string {
	if op := awsmiddleware.GetOperationName(req.Context()); op != "" {
		return op
	}
	t := req.Header.Get("X-Amz-Target")
	return t[strings.LastIndexByte(t, '.')+1:]
}

// limitedBody passes at most max bytes through; a body longer than that
// makes the read after the last allowed byte fail.
type limitedBody struct {
	body io.ReadCloser
	left int64
	op   string
	max  int64
	err  error
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.left <= 0 {
		// All allowed bytes are read: the body must end here.
		var probe [1]byte
		for range 100 {
			n, err := b.body.Read(probe[:])
			if n > 0 {
				b.err = &ResponseTooLargeError{Op: b.op, Limit: b.max, ContentLength: -1}
				return 0, b.err
			}
			if err != nil {
				return 0, err
			}
		}
		return 0, io.ErrNoProgress
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.body.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.body.Close() }

// ResponseTooLargeError is a KMS answer whose body is larger than
// MaxResponseBody. It is final: the SDK does not retry it, and the key
// manager does not count it as transient.
type ResponseTooLargeError struct {
	Op    string // the KMS operation, "" if unknown
	Limit int64
	// ContentLength is the length the answer announced, or -1 when it
	// announced none (or a false one) and more bytes than Limit arrived.
	ContentLength int64
}

func (e *ResponseTooLargeError) Error() string {
	what := "KMS response body"
	if e.Op != "" {
		what = "KMS " + e.Op + " response body"
	}
	if e.ContentLength > e.Limit {
		return fmt.Sprintf("%s larger than %d bytes (Content-Length %d): refused", what, e.Limit, e.ContentLength)
	}
	return fmt.Sprintf("%s larger than %d bytes: refused", what, e.Limit)
}

// ErrorCode and ErrorMessage give the failure a name of its own in the
// plugin's KMS error line (see kmserr.APIError).
func (e *ResponseTooLargeError) ErrorCode() string    { return "ResponseTooLarge" }
func (e *ResponseTooLargeError) ErrorMessage() string { return e.Error() }

// RetryableError tells the SDK's retryer not to try again: the same
// endpoint would send the same answer.
func (e *ResponseTooLargeError) RetryableError() bool { return false }
