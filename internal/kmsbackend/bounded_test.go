package kmsbackend_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
	"github.com/mariadb-go/aws_key_management/internal/kmserr"
)

// rawServer answers every request on 127.0.0.1 with bytes written by
// respond, straight to the connection: headers net/http would not send
// (a false Content-Length) and bodies of any size without holding them.
type rawServer struct {
	addr     string
	requests atomic.Int32
}

func newRawServer(t *testing.T, respond func(w *bufio.Writer) error) *rawServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close() // the client may keep one open, idle
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					s.requests.Add(1)
					bw := bufio.NewWriterSize(conn, 64<<10)
					if respond(bw) != nil || bw.Flush() != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

// hugeBody is prefix, n filler bytes, suffix: a JSON text far larger than
// any KMS answer, written without being held in memory.
type hugeBody struct {
	prefix, suffix string
	fill           byte
	n              int64
}

func (b hugeBody) size() int64 { return int64(len(b.prefix)) + b.n + int64(len(b.suffix)) }

// writeTo writes the body, as HTTP chunks if chunked, until done or until
// the client hangs up.
func (b hugeBody) writeTo(w *bufio.Writer, chunked bool) error {
	chunk := make([]byte, 32<<10)
	for i := range chunk {
		chunk[i] = b.fill
	}
	write := func(p []byte) error {
		if len(p) == 0 {
			return nil
		}
		if chunked {
			fmt.Fprintf(w, "%x\r\n", len(p))
		}
		_, err := w.Write(p)
		if chunked {
			w.WriteString("\r\n")
		}
		return err
	}
	if err := write([]byte(b.prefix)); err != nil {
		return err
	}
	for left := b.n; left > 0; {
		p := chunk[:min(left, int64(len(chunk)))]
		if err := write(p); err != nil {
			return err
		}
		left -= int64(len(p))
	}
	if err := write([]byte(b.suffix)); err != nil {
		return err
	}
	if chunked {
		w.WriteString("0\r\n\r\n")
	}
	return nil
}

const hugeSize = 120 << 20

// short is the start of an error's text: without the bound, it could
// quote a 120 MB message.
func short(err error) string {
	s := err.Error()
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// Every KMS answer is bounded: a huge body, announced or not, is refused
// after at most MaxResponseBody bytes, with an error that names the
// operation, is not retried and is not transient, and memory stays small.
// Before the bound, the Decrypt case allocated about 472 MB.
func TestResponseBodyBounded(t *testing.T) {
	plaintext := hugeBody{prefix: `{"KeyId":"arn:k","Plaintext":"`, fill: 'A', n: hugeSize, suffix: `"}`}
	message := hugeBody{prefix: `{"__type":"KMSInternalException","message":"`, fill: 'x', n: hugeSize, suffix: `"}`}
	blob := hugeBody{prefix: `{"KeyId":"arn:k","CiphertextBlob":"`, fill: 'A', n: hugeSize, suffix: `"}`}
	const json = "Content-Type: application/x-amz-json-1.1\r\nX-Amzn-Requestid: req-1\r\n"
	tests := []struct {
		name    string
		op      string
		respond func(w *bufio.Writer) error
		want    string // in the error text
	}{
		{"Decrypt 200 with its Content-Length", "Decrypt", func(w *bufio.Writer) error {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n", json, plaintext.size())
			return plaintext.writeTo(w, false)
		}, fmt.Sprintf("KMS Client API 'Decrypt' failed : ResponseTooLarge - KMS Decrypt response body larger than 65536 bytes (Content-Length %d): refused", plaintext.size())},
		{"error body of a 500 (retried if it were read)", "Decrypt", func(w *bufio.Writer) error {
			fmt.Fprintf(w, "HTTP/1.1 500 Internal Server Error\r\n%sContent-Length: %d\r\n\r\n", json, message.size())
			return message.writeTo(w, false)
		}, "KMS Decrypt response body larger than 65536 bytes (Content-Length"},
		{"error body, chunked", "GenerateDataKeyWithoutPlaintext", func(w *bufio.Writer) error {
			fmt.Fprintf(w, "HTTP/1.1 400 Bad Request\r\n%sTransfer-Encoding: chunked\r\n\r\n", json)
			return message.writeTo(w, true)
		}, "KMS GenerateDataKeyWithoutPlaintext response body larger than 65536 bytes: refused"},
		{"Decrypt 200, chunked, no length", "Decrypt", func(w *bufio.Writer) error {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\n%sTransfer-Encoding: chunked\r\n\r\n", json)
			return plaintext.writeTo(w, true)
		}, "KMS Client API 'Decrypt' failed : ResponseTooLarge - KMS Decrypt response body larger than 65536 bytes: refused"},
		{"Generate 200, chunked under a lying Content-Length", "GenerateDataKeyWithoutPlaintext", func(w *bufio.Writer) error {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\n%sContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n", json)
			return blob.writeTo(w, true)
		}, "KMS Client API 'GenerateDataKeyWithoutPlaintext' failed : ResponseTooLarge - KMS GenerateDataKeyWithoutPlaintext response body larger than 65536 bytes: refused"},
		{"Decrypt 200 until the connection closes", "Decrypt", func(w *bufio.Writer) error {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\n%sConnection: close\r\n\r\n", json)
			plaintext.writeTo(w, false)
			return io.EOF // and hang up
		}, "KMS Decrypt response body larger than 65536 bytes: refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			awsEnv(t)
			srv := newRawServer(t, tc.respond)
			c := newClient(t, "http://"+srv.addr, nil)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var err error
			if tc.op == "Decrypt" {
				_, err = decrypt(c, callCtx(t), []byte("blob"))
			} else {
				_, err = c.GenerateDataKeyWithoutPlaintext(callCtx(t), "alias/k", "AES_256")
			}
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("a huge answer was accepted")
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
				t.Errorf("the call allocated %d MB", got>>20)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not say %q", short(err), tc.want)
			}
			var ke *kmserr.Error
			if !errors.As(err, &ke) || ke.Transient() || ke.Code != "ResponseTooLarge" {
				t.Errorf("error %q: want a *kmserr.Error, code ResponseTooLarge, not transient", short(err))
			}
			var tooLarge *kmsbackend.ResponseTooLargeError
			if !errors.As(err, &tooLarge) || tooLarge.Op != tc.op || tooLarge.Limit != kmsbackend.MaxResponseBody {
				t.Errorf("error %q does not wrap a ResponseTooLargeError of %s", short(err), tc.op)
			}
			if n := srv.requests.Load(); n != 1 {
				t.Errorf("%d requests: a refused answer was retried", n)
			}
		})
	}
}

// An answer of exactly MaxResponseBody bytes is read; the bound is not
// off by one.
func TestResponseBodyAtTheBound(t *testing.T) {
	awsEnv(t)
	const prefix, suffix = `{"KeyId":"arn:k","CiphertextBlob":"AAAA","Padding":"`, `"}`
	body := prefix + strings.Repeat("x", kmsbackend.MaxResponseBody-len(prefix)-len(suffix)) + suffix
	for _, extra := range []string{"", " "} {
		for _, chunked := range []bool{false, true} {
			srv := newRawServer(t, func(w *bufio.Writer) error {
				b := hugeBody{prefix: body + extra}
				if chunked {
					w.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
				} else {
					fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", b.size())
				}
				return b.writeTo(w, chunked)
			})
			c := newClient(t, "http://"+srv.addr, nil)
			got, err := c.GenerateDataKeyWithoutPlaintext(callCtx(t), "alias/k", "AES_256")
			switch {
			case extra == "" && (err != nil || len(got) != 3):
				t.Errorf("chunked %v: %d bytes: %q, %v; want the blob", chunked, len(body), got, err)
			case extra != "" && (err == nil || !strings.Contains(err.Error(), "larger than 65536 bytes")):
				t.Errorf("chunked %v: %d bytes: %v; want it refused", chunked, len(body)+1, err)
			}
		}
	}
}
