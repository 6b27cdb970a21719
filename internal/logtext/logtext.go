package logtext

import (
	"fmt"
	"runtime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// OneLine returns s on one line: control characters (newlines included),
// the Unicode line separators and invalid UTF-8 are escaped as Go escapes
// them in a quoted string, and the result is cut at max bytes (with "..."
// appended), so that a broken or hostile peer cannot forge or flood lines
// of the error log.
func OneLine(s string, max int) string {
	var b strings.Builder
	for i, r := range s {
		if b.Len() >= max {
			b.WriteString("...")
			break
		}
		switch {
		case r == utf8.RuneError && !validAt(s, i):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			q := fmt.Sprintf("%+q", string(r))
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// validAt reports whether s[i:] starts with a valid encoding (of U+FFFD
// itself, when the decoder returned RuneError).
func validAt(s string, i int) bool {
	_, size := utf8.DecodeRuneInString(s[i:])
	return size == 3
}

// Panic describes a recovered panic on one line: its value and the
// function, file and line that panicked, such as
// `runtime error: index out of range [3] with length 2 at
// github.com/x/y.f (y.go:12)`. Call it from the deferred function that
// recovered r, while the panicking stack is still there.
func Panic(r any) string {
	return OneLine(fmt.Sprint(r), 512) + " at " + site()
}

// site finds the frame that panicked: the first one below runtime.gopanic
// that is not in the runtime itself (runtime.panicmem, sigpanic,
// goPanicIndex and the like raise panics for faults in the caller).
func site() string {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	seenPanic := false
	for {
		f, more := frames.Next()
		switch {
		case f.Function == "runtime.gopanic":
			seenPanic = true
		case seenPanic && !strings.HasPrefix(f.Function, "runtime."):
			return fmt.Sprintf("%s (%s:%d)", f.Function, shortFile(f.File), f.Line)
		}
		if !more {
			return "an unknown site"
		}
	}
}

// shortFile keeps the package directory and the file name.
func shortFile(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		if j := strings.LastIndexByte(path[:i], '/'); j >= 0 {
			return path[j+1:]
		}
	}
	return path
}
