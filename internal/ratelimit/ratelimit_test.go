package ratelimit

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// fakeClock is a virtual clock: Sleep moves it forward and records the
// wait; nothing waits on the wall clock.
type fakeClock struct {
	now    time.Time
	slept  []time.Duration
	cancel bool // Sleep acts as if ctx ended
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.slept = append(c.slept, d)
	if c.cancel || ctx.Err() != nil {
		return context.Canceled
	}
	c.now = c.now.Add(d)
	return nil
}

func (c *fakeClock) advance(d time.Duration) { c.now = c.now.Add(d) }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// take takes a slot, moving the fake clock to it.
func take(c *fakeClock, l *Limiter) Ticket {
	for {
		d, t, ok := l.Take()
		if ok {
			return t
		}
		c.advance(d)
	}
}

// Before any throttling requests are paced at Initial per second, and
// the rate grows by one per success (slow start).
func TestLimiterSlowStart(t *testing.T) {
	c := newFakeClock()
	l := NewLimiter(c)
	l.Initial = 10
	if _, _, ok := l.Take(); !ok {
		t.Fatal("first Take refused")
	}
	d, _, ok := l.Take()
	if ok || d != 100*time.Millisecond {
		t.Fatalf("second Take: ok %v, wait %v; want a wait of 100ms", ok, d)
	}
	c.advance(time.Second)
	for range 10 {
		l.Done(take(c, l), Success)
	}
	if l.rate != 20 {
		t.Errorf("rate after 10 successes from 10/s = %v, want 20", l.rate)
	}
	if s := l.Stats(); s.Rate != 0 || s.Requests != 11 || s.Throttled != 0 {
		t.Errorf("stats %+v, want slow start (Rate 0), 11 requests, none throttled", s)
	}
}

// The first throttle sets the rate to Beta x the successes of the last
// Window; throttles of requests sent before the cut or within Hold do
// not cut again; later ones cut by Beta; successes make it grow.
func TestLimiterCutOnThrottle(t *testing.T) {
	c := newFakeClock()
	l := NewLimiter(c)
	l.Initial, l.Hold = 1000, time.Second
	var tickets []Ticket
	for range 20 {
		tickets = append(tickets, take(c, l))
	}
	c.advance(2 * time.Second)
	for _, tk := range tickets[:10] { // long ago by the time of the throttle
		l.Done(tk, Success)
	}
	c.advance(2 * time.Second)
	for _, tk := range tickets[10:15] { // KMS serves this process 5/s
		l.Done(tk, Success)
	}
	c.advance(100 * time.Millisecond)
	l.Done(tickets[15], Throttled)
	if !near(l.rate, 0.8*5) {
		t.Fatalf("rate after the first throttle = %v, want %v", l.rate, 0.8*5)
	}
	l.Done(tickets[16], Throttled) // in flight before the cut
	if s := l.Stats(); !near(s.Rate, 4) || s.Throttled != 2 || s.Cuts != 1 {
		t.Fatalf("stats %+v, want rate 4, 2 throttled, 1 cut", s)
	}
	if d, _, ok := l.Take(); ok || d != 250*time.Millisecond {
		t.Errorf("first Take after the cut: ok %v, wait %v; want a wait of 250ms", ok, d)
	}
	tk := take(c, l) // within Hold of the cut
	l.Done(tk, Throttled)
	if l.Stats().Cuts != 1 {
		t.Errorf("a throttle within Hold cut again")
	}
	for range 4 {
		l.Done(take(c, l), Success)
	}
	grown := l.rate
	if grown <= 4 || grown > 5 {
		t.Errorf("rate after 4 successes = %v, want a little over 4", grown)
	}
	c.advance(l.Hold)
	l.Done(take(c, l), Throttled)
	if s := l.Stats(); s.Cuts != 2 || !near(s.Rate, 0.8*grown) {
		t.Errorf("second cut: %+v, want rate %v", s, 0.8*grown)
	}
}

// A throttle with nothing served starts slow start again from Min; the
// rate never goes below Min; after Probe without throttling slow start
// resumes from the current rate, after Forget from Initial.
func TestLimiterFloorAndForget(t *testing.T) {
	c := newFakeClock()
	l := NewLimiter(c)
	l.Initial, l.Min = 16, 2
	l.Done(take(c, l), Throttled)
	if l.rate != 2 || !l.slow {
		t.Fatalf("after a throttle with nothing served: rate %v, slow %v; want 2, true", l.rate, l.slow)
	}
	l.Done(take(c, l), Success)
	c.advance(500 * time.Millisecond)
	l.Done(take(c, l), Throttled) // one served in the window: 0.8 x 1, floored
	if l.rate != 2 || l.slow {
		t.Fatalf("rate %v, slow %v; want Min 2, out of slow start", l.rate, l.slow)
	}
	c.advance(l.Probe + time.Second)
	if _, _, ok := l.Take(); !ok || l.rate != 2 || !l.slow {
		t.Fatalf("after Probe: ok %v, rate %v, slow %v; want true, 2, true", ok, l.rate, l.slow)
	}
	c.advance(time.Second)
	l.Done(take(c, l), Success)
	if l.rate != 3 {
		t.Errorf("a success after Probe: rate %v, want 3 (slow start: +1)", l.rate)
	}
	c.advance(l.Forget + time.Second)
	if _, _, ok := l.Take(); !ok || l.rate != 16 || !l.slow {
		t.Errorf("after Forget: ok %v, rate %v, slow %v; want true, 16, true", ok, l.rate, l.slow)
	}
}

// Other failures leave the rate alone; Wait sleeps on the clock until
// its slot and returns the context's error.
func TestLimiterWaitAndOther(t *testing.T) {
	c := newFakeClock()
	l := NewLimiter(c)
	l.Initial = 4
	tk, err := l.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l.Done(tk, Other)
	if _, err := l.Wait(context.Background()); err != nil || len(c.slept) != 1 || c.slept[0] != 250*time.Millisecond {
		t.Fatalf("second Wait: %v, slept %v; want 250ms", err, c.slept)
	}
	if l.rate != 4 {
		t.Errorf("rate %v after Other, want 4", l.rate)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a cancelled context: %v", err)
	}
}

// The shared pause: a failure starts it (jittered within half to all of
// its length), failures during it do not grow it, the next round
// doubles it up to Max, successes halve it, and Wait sleeps the rest.
func TestBackoff(t *testing.T) {
	c := newFakeClock()
	b := &Backoff{First: 100 * time.Millisecond, Max: 300 * time.Millisecond, Clock: c}
	if err := b.Wait(context.Background()); err != nil || len(c.slept) != 0 {
		t.Fatalf("Wait with no pause: %v, slept %v", err, c.slept)
	}
	d := b.Failed()
	if d < 50*time.Millisecond || d > 100*time.Millisecond {
		t.Fatalf("first pause %v, want 50-100ms", d)
	}
	c.advance(10 * time.Millisecond)
	if again := b.Failed(); again != d-10*time.Millisecond {
		t.Errorf("a failure during the pause gave %v, want the rest %v", again, d-10*time.Millisecond)
	}
	if err := b.Wait(context.Background()); err != nil || c.slept[0] != d-10*time.Millisecond {
		t.Fatalf("Wait: %v, slept %v", err, c.slept)
	}
	for _, want := range []time.Duration{200, 300, 300} {
		d := b.Failed()
		if d < want*time.Millisecond/2 || d > want*time.Millisecond {
			t.Fatalf("pause %v, want %d/2 to %d ms", d, want, want)
		}
		c.advance(d)
	}
	b.Succeeded()
	b.Succeeded()
	if d := b.Failed(); d > 100*time.Millisecond {
		t.Errorf("pause after two successes %v, want at most First", d)
	}
	c.cancel = true
	if err := b.Wait(context.Background()); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait cut short: %v", err)
	}
}
