package logtext_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/mariadb-go/aws_key_management/internal/logtext"
)

func TestOneLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text, unicode é ü 鍵", "plain text, unicode é ü 鍵"},
		{"a\nb\r\n\tc\x00\x1b[31m", `a\nb\r\n\tc\x00\x1b[31m`},
		{"\u2028\u2029\u0085", `\u2028\u2029\u0085`},
		{"bad \xff utf8", `bad \xff utf8`},
		{`back\slash`, `back\slash`},
		{"keeps \uFFFD itself", "keeps \uFFFD itself"},
	}
	for _, tc := range tests {
		if got := logtext.OneLine(tc.in, 100); got != tc.want {
			t.Errorf("OneLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	got := logtext.OneLine(strings.Repeat("x", 5000)+"\n", 100)
	if len(got) != 103 || !strings.HasSuffix(got, "...") {
		t.Errorf("OneLine of 5001 bytes gave %d bytes, want 100 and ...", len(got))
	}
}

//go:noinline
func indexPanic(s []int, i int) int { return s[i] }

//go:noinline
func nilPanic(p *int) int { return *p }

//go:noinline
func valuePanic() { panic(errors.New("bad\nthing")) }

func describe(f func()) (msg string) {
	defer func() { msg = logtext.Panic(recover()) }()
	f()
	return ""
}

func TestPanicSite(t *testing.T) {
	tests := []struct {
		name string
		f    func()
		want string
	}{
		{"explicit", valuePanic, `^bad\\nthing at .*logtext_test\.valuePanic \(logtext/logtext_test\.go:\d+\)$`},
		{"index", func() { indexPanic([]int{1}, 3) }, `^runtime error: index out of range \[3\] with length 1 at .*logtext_test\.indexPanic \(logtext/logtext_test\.go:\d+\)$`},
		{"nil", func() { nilPanic(nil) }, `^runtime error: invalid memory address or nil pointer dereference at .*logtext_test\.nilPanic \(logtext/logtext_test\.go:\d+\)$`},
	}
	for _, tc := range tests {
		got := describe(tc.f)
		if !regexp.MustCompile(tc.want).MatchString(got) {
			t.Errorf("%s: Panic = %q, want /%s/", tc.name, got, tc.want)
		}
		if strings.Contains(got, "\n") {
			t.Errorf("%s: more than one line: %q", tc.name, got)
		}
	}
}
