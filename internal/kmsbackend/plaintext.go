package kmsbackend

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// The SDK decodes a Decrypt answer into buffers of its own (pooled and
// reset, never wiped) and keeps the base64 text of the key as a Go string.
// To keep the key out of them, a middleware of the Decrypt call reads the
// raw answer into a buffer it owns, decodes Plaintext from it straight
// into the caller's locked memory, wipes the buffer, and hands the SDK's
// deserializer an answer without Plaintext.

// plaintextMiddlewareID names the middleware in the Deserialize step.
const plaintextMiddlewareID = "AKMDecryptPlaintext"

// plaintextSink is where the middleware puts the key of a Decrypt answer.
// It travels in the call's context (see withPlaintextSink).
type plaintextSink struct {
	dst    []byte // the caller's buffer
	n      int    // the key's length in dst, when filled
	filled bool
}

type plaintextSinkKey struct{}

func withPlaintextSink(ctx context.Context, s *plaintextSink) context.Context {
	return context.WithValue(ctx, plaintextSinkKey{}, s)
}

// addPlaintextSink installs the middleware on a Decrypt call's stack, last
// in the Deserialize step: innermost, closest to the transport, so that it
// sees the raw response before the SDK's deserializer
// ("OperationDeserializer") reads it.
func addPlaintextSink(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc(plaintextMiddlewareID, takePlaintext), middleware.After)
}

func takePlaintext(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleDeserialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	sink, _ := ctx.Value(plaintextSinkKey{}).(*plaintextSink)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if sink == nil || !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		// Error answers carry no key: the SDK reads them as usual.
		return out, md, nil
	}
	sanitized, err := readDecryptAnswer(resp.Body, resp.ContentLength, sink)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(sanitized))
	return out, md, err
}

// readDecryptAnswer reads a Decrypt answer body, decodes its Plaintext
// into sink.dst and returns the answer without Plaintext (KeyId and
// EncryptionAlgorithm only) for the SDK. Every byte of the raw body is
// wiped before it returns.
func readDecryptAnswer(body io.Reader, contentLength int64, sink *plaintextSink) ([]byte, error) {
	size := int64(MaxResponseBody)
	if contentLength >= 0 && contentLength < size {
		size = contentLength
	}
	// One byte more than expected: a body that fills it is too long.
	raw := make([]byte, size+1)
	defer clear(raw)
	n, err := readInto(body, raw)
	if err != nil {
		return nil, err
	}
	if n == len(raw) {
		if size < MaxResponseBody {
			return nil, invalidAnswer("the body is longer than its Content-Length")
		}
		return nil, &ResponseTooLargeError{Op: opDecrypt, Limit: MaxResponseBody, ContentLength: -1}
	}
	a, err := scanDecryptAnswer(raw[:n])
	if err != nil {
		return nil, err
	}
	// Unescape the base64 text in place: raw is ours and wiped above.
	b64, err := unescapeASCII(raw[a.plaintext[0]:a.plaintext[1]])
	if err != nil {
		return nil, err
	}
	keyLen, err := base64Len(b64)
	if err != nil {
		return nil, err
	}
	if keyLen > len(sink.dst) {
		return nil, invalidAnswer("Plaintext holds a key of %d bytes; at most %d fit", keyLen, len(sink.dst))
	}
	got, err := base64.StdEncoding.Strict().Decode(sink.dst, b64)
	if err != nil || got != keyLen {
		clear(sink.dst)
		return nil, invalidAnswer("Plaintext is not valid base64")
	}
	sink.n, sink.filled = got, true
	sanitized := []byte{'{'}
	for _, m := range []struct {
		name string
		tok  [2]int
	}{{"KeyId", a.keyID}, {"EncryptionAlgorithm", a.algorithm}} {
		if m.tok[1] == 0 {
			continue
		}
		if len(sanitized) > 1 {
			sanitized = append(sanitized, ',')
		}
		sanitized = append(sanitized, '"')
		sanitized = append(sanitized, m.name...)
		sanitized = append(sanitized, '"', ':')
		sanitized = append(sanitized, raw[m.tok[0]:m.tok[1]]...)
	}
	return append(sanitized, '}'), nil
}

// readInto reads r into buf until EOF or until buf is full, without
// allocating (io.ReadAll would leave partial copies behind as garbage).
//
// It reads 16 bytes at a time: Go's memmove copies up to 16 bytes through
// two general registers, more through SIMD registers (all sixteen for a
// Decrypt answer). Registers are saved by the kernel on the thread's
// signal stack, in Go heap memory, whenever a signal interrupts the
// thread, and stay there until the next signal: with one large copy, the
// whole answer, key included, was found there now and then
// (TestDecryptLeavesNoKeyCopies).
func readInto(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:min(n+16, len(buf))])
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// base64Len checks that s is padded standard base64 and returns the
// length of what it decodes to.
func base64Len(s []byte) (int, error) {
	if len(s)%4 != 0 {
		return 0, invalidAnswer("Plaintext is not valid base64")
	}
	pad := 0
	for pad < 2 && pad < len(s) && s[len(s)-1-pad] == '=' {
		pad++
	}
	for _, c := range s[:len(s)-pad] {
		if !isBase64(c) {
			return 0, invalidAnswer("Plaintext is not valid base64")
		}
	}
	return len(s)/4*3 - pad, nil
}

func isBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}

// InvalidAnswerError is a Decrypt answer the plugin refuses to read: not
// a JSON object, no Plaintext string, a key that does not fit. The reason
// never quotes the answer (it may hold key material). Like
// ResponseTooLargeError it is final.
type InvalidAnswerError struct {
	Op     string
	Reason string
}

func invalidAnswer(format string, args ...any) *InvalidAnswerError {
	return &InvalidAnswerError{Op: opDecrypt, Reason: fmt.Sprintf(format, args...)}
}

func (e *InvalidAnswerError) Error() string {
	return "KMS " + e.Op + " answer refused: " + e.Reason
}

// ErrorCode and ErrorMessage name the failure in the plugin's KMS error
// line (see kmserr.APIError).
func (e *InvalidAnswerError) ErrorCode() string    { return "InvalidResponse" }
func (e *InvalidAnswerError) ErrorMessage() string { return e.Error() }

// RetryableError tells the SDK's retryer not to try again.
func (e *InvalidAnswerError) RetryableError() bool { return false }

// decryptAnswer locates the members of a Decrypt answer the plugin reads:
// offsets into the body, [start, end). plaintext is the content of the
// JSON string (between its quotes, escapes not yet undone); keyID and
// algorithm are whole string tokens, quotes included ({0, 0} if absent).
type decryptAnswer struct {
	plaintext, keyID, algorithm [2]int
}

// scanDecryptAnswer reads a Decrypt answer: one JSON object whose members
// may come in any order, with Plaintext a string and KeyId and
// EncryptionAlgorithm strings if present, each at most once. Other members
// are skipped (any JSON value, nested at most 32 deep). It makes no copy of
// any part of the body.
func scanDecryptAnswer(b []byte) (decryptAnswer, error) {
	var a decryptAnswer
	s := jsonScanner{b: b}
	s.space()
	if !s.eat('{') {
		return a, s.fail("the answer is not a JSON object")
	}
	s.space()
	seenPlaintext := false
	if !s.eat('}') {
		for {
			s.space()
			name, err := s.str()
			if err != nil {
				return a, err
			}
			s.space()
			if !s.eat(':') {
				return a, s.fail("expected ':'")
			}
			s.space()
			var slot *[2]int
			member := b[name[0]:name[1]]
			switch {
			case jsonStringIs(member, "Plaintext"):
				if seenPlaintext {
					return a, invalidAnswer("Plaintext appears twice")
				}
				seenPlaintext = true
				if s.peek() != '"' {
					return a, invalidAnswer("Plaintext is not a JSON string")
				}
				tok, err := s.str()
				if err != nil {
					return a, err
				}
				a.plaintext = [2]int{tok[0] + 1, tok[1] - 1}
			case jsonStringIs(member, "KeyId"):
				slot = &a.keyID
			case jsonStringIs(member, "EncryptionAlgorithm"):
				slot = &a.algorithm
			default:
				if err := s.value(0); err != nil {
					return a, err
				}
			}
			if slot != nil {
				if slot[1] != 0 {
					return a, invalidAnswer("a member appears twice")
				}
				if s.peek() != '"' {
					return a, invalidAnswer("KeyId or EncryptionAlgorithm is not a JSON string")
				}
				tok, err := s.str()
				if err != nil {
					return a, err
				}
				*slot = tok
			}
			s.space()
			if s.eat('}') {
				break
			}
			if !s.eat(',') {
				return a, s.fail("expected ',' or '}'")
			}
		}
	}
	s.space()
	if s.i != len(b) {
		return a, s.fail("data after the JSON object")
	}
	if !seenPlaintext {
		return a, invalidAnswer("no Plaintext in the answer")
	}
	return a, nil
}

// jsonScanner walks a JSON text without copying or decoding it.
type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) fail(what string) error {
	return invalidAnswer("not the JSON expected at byte %d: %s", s.i, what)
}

func (s *jsonScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str reads a string token and returns its offsets, quotes included.
func (s *jsonScanner) str() ([2]int, error) {
	start := s.i
	if !s.eat('"') {
		return [2]int{}, s.fail("expected a string")
	}
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return [2]int{start, s.i}, nil
		case c < 0x20:
			return [2]int{}, s.fail("control character in a string")
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return [2]int{}, s.fail("unterminated string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex4(s.b[s.i+2:s.i+6]) {
					return [2]int{}, s.fail(`bad \u escape`)
				}
				s.i += 6
			default:
				return [2]int{}, s.fail("bad escape")
			}
		default:
			s.i++
		}
	}
	return [2]int{}, s.fail("unterminated string")
}

// value skips one JSON value of any kind.
func (s *jsonScanner) value(depth int) error {
	if depth > 32 {
		return s.fail("nested too deep")
	}
	switch c := s.peek(); {
	case c == '"':
		_, err := s.str()
		return err
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		s.i++
		s.space()
		if s.eat(end) {
			return nil
		}
		for {
			s.space()
			if c == '{' {
				if _, err := s.str(); err != nil {
					return err
				}
				s.space()
				if !s.eat(':') {
					return s.fail("expected ':'")
				}
				s.space()
			}
			if err := s.value(depth + 1); err != nil {
				return err
			}
			s.space()
			if s.eat(end) {
				return nil
			}
			if !s.eat(',') {
				return s.fail("expected ',' or the end of an object or array")
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return s.fail("expected a value")
}

func (s *jsonScanner) literal(word string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return s.fail("expected a value")
	}
	s.i += len(word)
	return nil
}

// number skips a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() error {
	s.eat('-')
	if !s.eat('0') {
		if s.digits() == 0 {
			return s.fail("bad number")
		}
	}
	if s.eat('.') && s.digits() == 0 {
		return s.fail("bad number")
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if s.digits() == 0 {
			return s.fail("bad number")
		}
	}
	return nil
}

func (s *jsonScanner) digits() int {
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if hexVal(c) < 0 {
			return false
		}
	}
	return true
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// nextASCII decodes the character at b[i] of a string's content (already
// checked by str) and returns it with the index after it; ok is false
// for characters outside ASCII, which no name or base64 text here holds.
func nextASCII(b []byte, i int) (c byte, next int, ok bool) {
	if b[i] != '\\' {
		return b[i], i + 1, b[i] < 0x80
	}
	switch e := b[i+1]; e {
	case 'u':
		v := hexVal(b[i+2])<<12 | hexVal(b[i+3])<<8 | hexVal(b[i+4])<<4 | hexVal(b[i+5])
		return byte(v), i + 6, v < 0x80
	case 'b':
		return '\b', i + 2, true
	case 'f':
		return '\f', i + 2, true
	case 'n':
		return '\n', i + 2, true
	case 'r':
		return '\r', i + 2, true
	case 't':
		return '\t', i + 2, true
	default: // '"', '\\', '/'
		return e, i + 2, true
	}
}

// jsonStringIs reports whether the string token tok (quotes included)
// says want, escapes undone.
func jsonStringIs(tok []byte, want string) bool {
	content := tok[1 : len(tok)-1]
	j := 0
	for i := 0; i < len(content); {
		c, next, ok := nextASCII(content, i)
		if !ok || j >= len(want) || c != want[j] {
			return false
		}
		i, j = next, j+1
	}
	return j == len(want)
}

// unescapeASCII undoes the escapes of a string's content in place and
// returns the shortened content. Anything outside ASCII is refused.
func unescapeASCII(b []byte) ([]byte, error) {
	j := 0
	for i := 0; i < len(b); {
		c, next, ok := nextASCII(b, i)
		if !ok {
			return nil, invalidAnswer("Plaintext is not valid base64")
		}
		b[j] = c
		i, j = next, j+1
	}
	return b[:j], nil
}
