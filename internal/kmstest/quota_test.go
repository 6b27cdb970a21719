package kmstest

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// The quota is one token bucket for every client: a burst of Quota
// requests passes, the next is ThrottlingException "Rate exceeded." with
// HTTP 400 at once, and tokens come back at Quota per second of the
// emulator's clock (a fake one here: no wall-clock timing).
func TestQuotaThrottlesAcrossClients(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	base := time.Now()
	var off atomic.Int64
	s.now = func() time.Time { return base.Add(time.Duration(off.Load())) }
	if err := s.SetLimits(Limits{Quota: 4}); err != nil {
		t.Fatal(err)
	}
	a, b := client(t, url), client(t, url)
	cx := ctx(t)
	list := func(c *kms.Client) error { _, err := c.ListKeys(cx, &kms.ListKeysInput{}); return err }
	for i, c := range []*kms.Client{a, b, a, b} {
		if err := list(c); err != nil {
			t.Fatalf("request %d within the burst: %v", i+1, err)
		}
	}
	err := list(b)
	if e := wantCode(t, err, "ThrottlingException"); e.ErrorMessage() != "Rate exceeded." || httpStatus(err) != 400 {
		t.Errorf("throttled answer: %q, status %d", e.ErrorMessage(), httpStatus(err))
	}
	off.Add(int64(250 * time.Millisecond)) // one token back
	if err := list(a); err != nil {
		t.Errorf("after a quarter second: %v", err)
	}
	wantCode(t, list(a), "ThrottlingException")
	if st := s.LimitStats(); st.Requests != 7 || st.Throttled != 2 {
		t.Errorf("stats %+v, want 7 requests, 2 throttled", st)
	}
	// The control endpoint sets and shows the same; calls/reset clears the counts.
	if st, body := ctl(t, "POST", url+"/_emulator/limits", `{"Quota":0,"LatencyMillis":30}`); st != 204 {
		t.Fatalf("POST limits: %d %q", st, body)
	}
	for range 10 {
		if err := list(a); err != nil {
			t.Fatalf("with no quota: %v", err)
		}
	}
	st, body := ctl(t, "GET", url+"/_emulator/limits", "")
	var got struct {
		Quota, LatencyMillis float64
		Requests, Throttled  int
	}
	if err := json.Unmarshal([]byte(body), &got); st != 200 || err != nil {
		t.Fatalf("GET limits: %d %q %v", st, body, err)
	}
	if got.Quota != 0 || got.LatencyMillis != 30 || got.Requests != 17 || got.Throttled != 2 {
		t.Errorf("GET limits %+v, want quota 0, latency 30, 17 requests, 2 throttled", got)
	}
	ctl(t, "POST", url+"/_emulator/calls/reset", "")
	if st := s.LimitStats(); st.Requests != 0 || st.Throttled != 0 {
		t.Errorf("after reset: %+v", st)
	}
	for _, bad := range []string{`{"Quota":-1}`, `{"LatencyMillis":-5}`, `nope`} {
		if st, _ := ctl(t, "POST", url+"/_emulator/limits", bad); st != 400 {
			t.Errorf("POST limits %s: %d, want 400", bad, st)
		}
	}
}

// The latency holds every answer: a call with a deadline shorter than
// it does not get one (the deadline, not a clock, is what is checked).
func TestLatencyHoldsAnswers(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	if err := s.SetLimits(Limits{Latency: time.Hour}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx(t), 100*time.Millisecond)
	defer cancel()
	_, err := client(t, url).ListKeys(short, &kms.ListKeysInput{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ListKeys under an hour of latency: %v, want the deadline", err)
	}
	if err := s.SetLimits(Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, url).ListKeys(ctx(t), &kms.ListKeysInput{}); err != nil {
		t.Fatalf("without latency: %v", err)
	}
}
