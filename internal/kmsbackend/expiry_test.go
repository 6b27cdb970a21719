package kmsbackend

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestSessionExpiry(t *testing.T) {
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	env := func(v string) func(string) string {
		return func(k string) string {
			switch k {
			case ExpirationVariable:
				return v
			case "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY":
				return "set"
			}
			return ""
		}
	}
	for _, tc := range []struct{ v, note, warning string }{
		{"", "", ""},
		{"2026-12-02T01:15:00Z", "session credentials expire at 2026-12-02 01:15:00 UTC (in 15 min)", ""},
		{"2026-12-02T02:14:30+01:00", "session credentials expire at 2026-12-02 01:14:30 UTC (in 15 min)", ""},
		{"2026-12-02T00:30:00Z", "", "session credentials expired at 2026-12-02 00:30:00 UTC (30 min ago): KMS refuses them (ExpiredTokenException)"},
		{"tomorrow", "", `AWS_CREDENTIAL_EXPIRATION="tomorrow" is not an RFC 3339 time`},
	} {
		note, warning := sessionExpiry(env(tc.v), now)
		if !strings.HasPrefix(note, tc.note) || (tc.note == "") != (note == "") ||
			!strings.HasPrefix(warning, tc.warning) || (tc.warning == "") != (warning == "") {
			t.Errorf("%q: note %q, warning %q", tc.v, note, warning)
		}
	}
	// Without credentials in the environment the variable says nothing
	// about the credentials in use.
	onlyExp := func(k string) string {
		if k == ExpirationVariable {
			return "2026-12-02T01:15:00Z"
		}
		return ""
	}
	if note, warning := sessionExpiry(onlyExp, now); note != "" || warning != "" {
		t.Errorf("no environment credentials: note %q, warning %q", note, warning)
	}
}

type fixedCreds struct {
	c     aws.Credentials
	calls int
}

func (f *fixedCreds) Retrieve(context.Context) (aws.Credentials, error) { f.calls++; return f.c, nil }

func TestExpiryNotice(t *testing.T) {
	now := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	src := &fixedCreds{c: aws.Credentials{AccessKeyID: "ASIA", SecretAccessKey: "s", CanExpire: true, Expires: now.Add(time.Hour)}}
	var notes []string
	n := &expiryNotice{next: src, now: func() time.Time { return now }, log: func(note, warning string) { notes = append(notes, note+warning) }}
	for i := 0; i < 3; i++ {
		if _, err := n.Retrieve(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	src.c.Expires = now.Add(2 * time.Hour) // renewed
	n.Retrieve(context.Background())
	want := []string{
		"session credentials expire at 2026-12-02 02:00:00 UTC (in 60 min); after that keys already loaded keep working but no new key can be created until the server gets fresh credentials",
		"session credentials expire at 2026-12-02 03:00:00 UTC (in 120 min); after that keys already loaded keep working but no new key can be created until the server gets fresh credentials",
	}
	if strings.Join(notes, "\n") != strings.Join(want, "\n") {
		t.Errorf("notes:\n%s", strings.Join(notes, "\n"))
	}
	// Credentials that do not expire are not logged.
	src.c = aws.Credentials{AccessKeyID: "AKIA", SecretAccessKey: "s"}
	n.Retrieve(context.Background())
	if len(notes) != 2 {
		t.Errorf("static credentials logged: %q", notes[2:])
	}
}
