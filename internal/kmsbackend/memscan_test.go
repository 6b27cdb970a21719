//go:build linux

package kmsbackend_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// The memory scan: a real Client (New, over loopback) unwraps known random
// keys into locked memory; the test then reads its own memory
// (/proc/self/maps, /proc/self/mem) and finds every copy of each key, raw
// or in base64.
//
// The KMS answering runs in a child process (this test binary again): a
// server in this process would hold the answers in its own buffers. The
// keys reach the child through a pipe, written from a mapping outside the
// Go heap; the needles the scan looks for live in mappings of their own
// that the scan skips, so nothing but the code under test puts a key
// into this process's memory.

const memScanChildEnv = "KMSBACKEND_MEMSCAN_CHILD"

// memScanKeyARN is the KeyId the child reports.
const memScanKeyARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

// TestMemScanChild is the KMS of TestDecryptLeavesNoKeyCopies: it reads
// keys (32 bytes each) from stdin and answers the n-th Decrypt with the
// n-th key, over plain HTTP, TLS or TLS with HTTP/2 as the environment
// says. It prints its URL (and for TLS its certificate) and serves until
// stdin is closed. On its own it is skipped.
func TestMemScanChild(t *testing.T) {
	mode := os.Getenv(memScanChildEnv)
	if mode == "" {
		t.Skip("the KMS of TestDecryptLeavesNoKeyCopies; it runs only when that test starts it")
	}
	in := bufio.NewReader(os.Stdin)
	nkeys, err := in.ReadByte()
	if err != nil {
		t.Fatal(err)
	}
	keys := make([][]byte, nkeys)
	for i := range keys {
		keys[i] = make([]byte, 32)
		if _, err := io.ReadFull(in, keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("X-Amz-Target") != "TrentService.Decrypt" || n >= len(keys) {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"__type":"ValidationException","message":"unexpected request"}`)
			return
		}
		body := `{"KeyId":"` + memScanKeyARN + `","Plaintext":"` + base64.StdEncoding.EncodeToString(keys[n]) +
			`","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}`
		n++
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Requestid", "11111111-2222-3333-4444-55555555555"+strconv.Itoa(n%10))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	}))
	srv.Config.SetKeepAlivesEnabled(true)
	switch mode {
	case "http":
		srv.Start()
		fmt.Println(srv.URL)
	case "tls", "h2":
		srv.EnableHTTP2 = mode == "h2"
		srv.StartTLS()
		fmt.Println(srv.URL, base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	default:
		t.Fatalf("mode %q", mode)
	}
	io.Copy(io.Discard, in) // until the parent closes stdin
	srv.Close()
}

// outsideHeap maps n bytes of anonymous memory, mlock()ed and
// MADV_DONTDUMP as internal/keys does for keys: outside the Go heap, so
// the garbage collector never moves or copies what it holds.
func outsideHeap(t *testing.T, n int) []byte {
	t.Helper()
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Madvise(b, 16) // MADV_DONTDUMP
	syscall.Mlock(b)       // best effort: RLIMIT_MEMLOCK may refuse
	t.Cleanup(func() { clear(b); syscall.Munmap(b) })
	return b
}

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// mapping is one line of /proc/self/maps.
type mapping struct {
	start, end uintptr
	perms      string
	name       string
}

func (m mapping) String() string {
	name := m.name
	if name == "" {
		name = "anonymous"
	}
	return fmt.Sprintf("%x-%x %s %s", m.start, m.end, m.perms, name)
}

func readMaps(t *testing.T) []mapping {
	t.Helper()
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	var out []mapping
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		lo, hi, _ := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad maps line %q", line)
		}
		m := mapping{start: uintptr(start), end: uintptr(end), perms: f[1]}
		if len(f) > 5 {
			m.name = strings.Join(f[5:], " ")
		}
		out = append(out, m)
	}
	return out
}

// hit is one place a needle was found.
type hit struct {
	addr uintptr
	in   mapping
	// response: the 4 KiB before the hit hold a raw HTTP response's
	// status line, as a connection's read buffer (net/http's bufio, or
	// crypto/tls's record buffer) does.
	response bool
	// registers: the hit lies in the XMM registers of an x86-64 signal
	// frame's saved FPU state, which the kernel writes on a thread's
	// signal stack when a signal interrupts it.
	registers bool
}

func (h hit) String() string {
	where := "elsewhere"
	switch {
	case h.response:
		where = "in a raw HTTP response buffer"
	case h.registers:
		where = "in CPU registers saved in a signal frame"
	}
	return fmt.Sprintf("%#x (%s) in %v", h.addr, where, h.in)
}

// memScanner reads this process's memory through a buffer outside the Go
// heap; the mappings in skip (its own buffer, the needles, the test's
// reference keys) are not searched.
type memScanner struct {
	t    *testing.T
	buf  []byte
	mem  *os.File
	skip [][]byte
}

func newMemScanner(t *testing.T, skip ...[]byte) *memScanner {
	f, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	s := &memScanner{t: t, buf: outsideHeap(t, 1<<20), mem: f}
	s.skip = append(skip, s.buf)
	return s
}

// segments returns the parts of m to search: all of it but the skipped
// buffers (the kernel merges adjacent mappings with the same flags, so a
// skipped buffer may share its mapping with the caller's).
func (s *memScanner) segments(m mapping) [][2]uintptr {
	segs := [][2]uintptr{{m.start, m.end}}
	for _, b := range s.skip {
		lo, hi := addrOf(b), addrOf(b)+uintptr(cap(b))
		var out [][2]uintptr
		for _, g := range segs {
			if hi <= g[0] || lo >= g[1] {
				out = append(out, g)
				continue
			}
			if lo > g[0] {
				out = append(out, [2]uintptr{g[0], lo})
			}
			if hi < g[1] {
				out = append(out, [2]uintptr{hi, g[1]})
			}
		}
		segs = out
	}
	return segs
}

// scan returns the hits of each needle. It reads every readable mapping
// but [vvar], [vsyscall] and those over 1 GiB (the race detector's shadow
// memory: it holds no data, only access metadata).
func (s *memScanner) scan(needles ...[]byte) [][]hit {
	runtime.GC()
	runtime.GC()
	hits := make([][]hit, len(needles))
	longest := 0
	for _, n := range needles {
		longest = max(longest, len(n))
	}
	for _, m := range readMaps(s.t) {
		if m.perms[0] != 'r' || strings.HasPrefix(m.name, "[vvar") || m.name == "[vsyscall]" || m.end-m.start > 1<<30 {
			continue
		}
		for _, seg := range s.segments(m) {
			step := uintptr(len(s.buf) - longest)
			for off := seg[0]; off < seg[1]; off += step {
				n := min(uintptr(len(s.buf)), seg[1]-off)
				got, err := s.mem.ReadAt(s.buf[:n], int64(off))
				if err != nil && got == 0 {
					break // an unreadable mapping (a device, say)
				}
				chunk := s.buf[:got]
				for i, needle := range needles {
					for from := 0; ; {
						j := bytes.Index(chunk[from:], needle)
						if j < 0 {
							break
						}
						at := off + uintptr(from+j)
						from += j + 1
						if k := len(hits[i]); k > 0 && hits[i][k-1].addr == at {
							continue // found again in the overlap of two reads
						}
						hits[i] = append(hits[i], hit{addr: at, in: m, response: s.afterStatusLine(m, at),
							registers: s.inSavedXMM(m, at, len(needle))})
					}
				}
				if n < uintptr(len(s.buf)) {
					break
				}
			}
		}
	}
	return hits
}

// afterStatusLine reports whether "HTTP/1.1 200 OK\r\n" is in the 4 KiB
// (net/http's read buffer size) before at, within its mapping.
func (s *memScanner) afterStatusLine(m mapping, at uintptr) bool {
	from := max(m.start, at-4096)
	if at < 4096 {
		from = m.start
	}
	win := make([]byte, at-from)
	if _, err := s.mem.ReadAt(win, int64(from)); err != nil {
		return false
	}
	return bytes.Contains(win, []byte("HTTP/1.1 200 OK\r\n"))
}

// inSavedXMM reports whether [at, at+n) lies in the XMM0-15 area of an
// x86-64 signal frame's saved FPU state: an fxsave image, 64-byte
// aligned, with XMM0 at offset 160 and, at offset 464, the magic number
// the Linux kernel stores in the frames it writes (FP_XSTATE_MAGIC1).
func (s *memScanner) inSavedXMM(m mapping, at uintptr, n int) bool {
	if runtime.GOARCH != "amd64" {
		return false
	}
	var magic [4]byte
	for f := (at - 160) &^ 63; f+416 >= at+uintptr(n) && f >= m.start && f+468 <= m.end; f -= 64 {
		if f+160 > at {
			continue
		}
		if _, err := s.mem.ReadAt(magic[:], int64(f+464)); err == nil && magic == [4]byte{0x53, 0x58, 0x50, 0x46} {
			return true
		}
	}
	return false
}

// memScanKMS starts the child KMS and hands it the keys.
func memScanKMS(t *testing.T, mode string, keys ...[]byte) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMemScanChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), memScanChildEnv+"="+mode)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	// The keys go from their mapping straight into the pipe (os.File
	// writes with no copy of its own).
	if _, err := stdin.Write([]byte{byte(len(keys))}); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if _, err := stdin.Write(k); err != nil {
			t.Fatal(err)
		}
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the child KMS did not start: %v", err)
	}
	go io.Copy(io.Discard, stdout)
	url, cert, _ := strings.Cut(strings.TrimSpace(line), " ")
	if cert != "" {
		pemText, err := base64.StdEncoding.DecodeString(cert)
		if err != nil {
			t.Fatal(err)
		}
		bundle := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(bundle, pemText, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_CA_BUNDLE", bundle)
	}
	return url
}

// connTrace records the connection each call used.
type connTrace struct {
	local  []string
	reused []bool
}

func (c *connTrace) ctx(t *testing.T) context.Context {
	return httptrace.WithClientTrace(callCtx(t), &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		c.local = append(c.local, info.Conn.LocalAddr().String())
		c.reused = append(c.reused, info.Reused)
	}})
}

// TestDecryptLeavesNoKeyCopies establishes where a key unwrapped by
// Decrypt stays in this process's memory. After the call, and after the
// caller wiped its buffer and a garbage collection:
//
//   - the raw key is nowhere but in the caller's buffer (then nowhere);
//   - its base64 form is in the connection's read buffers only, as part of
//     the raw HTTP answer: net/http's (bufio, 4 KiB) and, with TLS,
//     crypto/tls's record buffer, one copy in each;
//   - one more KMS call on the same (kept-alive) connection overwrites
//     them: the first key is then nowhere, except that
//   - with TLS, a copy may also sit in the CPU registers the kernel saved
//     in a signal frame (on a thread's signal stack, in the Go heap) when
//     a signal interrupted crypto/tls or net/http while they copied the
//     answer through SIMD registers; it stays until the next signal on
//     that thread. Over plain HTTP the answer never passes through more
//     than 16 bytes of registers on this side (readInto), so none is
//     allowed there.
//
// With the SDK decoding the answer (the code before plaintext.go), the
// base64 form is also in the SDK's pooled body buffer and in a string of
// its JSON decoder, and this test fails. "h2" offers HTTP/2: the client
// must stay on HTTP/1.1, whose buffers are the ones above (over HTTP/2 the
// answer is copied through the framer's and the streams' pooled buffers).
func TestDecryptLeavesNoKeyCopies(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		buffers int  // read buffers of one connection
		tls     bool // copies in saved registers are possible
	}{{"http", 1, false}, {"tls", 2, true}, {"h2", 2, true}} {
		t.Run(tc.mode, func(t *testing.T) {
			awsEnv(t)
			// The reference keys and the needles, outside the Go heap.
			ref := outsideHeap(t, 4096)
			k1, k2 := ref[0:32], ref[32:64]
			if _, err := rand.Read(ref[:64]); err != nil {
				t.Fatal(err)
			}
			b64k1, b64k2 := ref[64:108], ref[128:172]
			base64.StdEncoding.Encode(b64k1, k1)
			base64.StdEncoding.Encode(b64k2, k2)
			url := memScanKMS(t, tc.mode, k1, k2)
			c := newClient(t, url, nil)
			dst := outsideHeap(t, 4096)[:32]
			scanner := newMemScanner(t, ref)
			inDst := func(h hit) bool { return h.addr >= addrOf(dst) && h.addr < addrOf(dst)+uintptr(len(dst)) }
			// check logs where a needle was found and fails on any place
			// not allowed: the caller's buffer (exactly once if wantInDst),
			// at most connBuffers response buffers, saved registers if
			// registers (TLS, base64 only).
			check := func(stage, what string, hits []hit, wantInDst bool, connBuffers int, registers bool) {
				t.Helper()
				dstHits, connHits := 0, 0
				for _, h := range hits {
					switch {
					case inDst(h):
						t.Logf("%s: %s at %#x: the caller's buffer", stage, what, h.addr)
						dstHits++
					case h.response && connBuffers > 0:
						t.Logf("%s: %s at %v", stage, what, h)
						connHits++
					case h.registers && registers:
						t.Logf("%s: %s at %v", stage, what, h)
					default:
						t.Errorf("%s: %s at %v", stage, what, h)
					}
				}
				if wantInDst && dstHits != 1 {
					t.Errorf("%s: %s found %d times in the caller's buffer, want once (is the scan reading memory?)", stage, what, dstHits)
				}
				if connHits > connBuffers {
					t.Errorf("%s: %s in %d response buffers, want at most %d", stage, what, connHits, connBuffers)
				}
			}

			var trace connTrace
			n, keyID, err := c.DecryptWithKeyID(trace.ctx(t), []byte("blob one"), dst)
			if err != nil || n != 32 || !bytes.Equal(dst, k1) || keyID != memScanKeyARN {
				t.Fatalf("Decrypt: %d bytes, key id %q, %v", n, keyID, err)
			}
			h := scanner.scan(k1, b64k1)
			check("after Decrypt", "the raw key", h[0], true, 0, false)
			check("after Decrypt", "the key in base64", h[1], false, tc.buffers, tc.tls)

			clear(dst)
			h = scanner.scan(k1, b64k1)
			check("after the caller wiped it", "the raw key", h[0], false, 0, false)
			check("after the caller wiped it", "the key in base64", h[1], false, tc.buffers, tc.tls)

			n, _, err = c.DecryptWithKeyID(trace.ctx(t), []byte("blob two"), dst)
			if err != nil || n != 32 || !bytes.Equal(dst, k2) {
				t.Fatalf("Decrypt of a second key: %d bytes, %v", n, err)
			}
			if len(trace.local) != 2 || !trace.reused[1] || trace.local[0] != trace.local[1] {
				t.Fatalf("the second call did not reuse the first one's connection: %v, reused %v", trace.local, trace.reused)
			}
			clear(dst)
			h = scanner.scan(k1, b64k1, k2, b64k2)
			const again = "after a second Decrypt on the connection"
			check(again, "the first raw key", h[0], false, 0, false)
			check(again, "the first key in base64", h[1], false, 0, tc.tls)
			check(again, "the second raw key", h[2], false, 0, false)
			check(again, "the second key in base64", h[3], false, tc.buffers, tc.tls)
		})
	}
}
