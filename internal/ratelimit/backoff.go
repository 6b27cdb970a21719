package ratelimit

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff is a pause shared by every worker of a run: a throttling or
// transient KMS error starts (or grows) it, every worker waits for it
// before its next call, and each success halves the next one. One round
// of failures (those that arrive while a pause runs) grows it once. Its
// zero value works: First 100 ms, Max 5 s, the real clock.
type Backoff struct {
	First, Max time.Duration
	// Clock is the time source; nil means the real one.
	Clock Clock

	mu       sync.Mutex
	pauseTil time.Time
	pauseLen time.Duration
}

// Wait returns once no pause runs, or ctx's cause if ctx ends first.
func (b *Backoff) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	c := clockOf(b.Clock)
	b.mu.Lock()
	d := b.pauseTil.Sub(c.Now())
	b.mu.Unlock()
	if d <= 0 {
		return nil
	}
	return c.Sleep(ctx, d)
}

// Failed starts or extends the pause after a throttling or transient
// error and returns its length.
func (b *Backoff) Failed() time.Duration {
	first, most := b.First, b.Max
	if first <= 0 {
		first = 100 * time.Millisecond
	}
	if most <= 0 {
		most = 5 * time.Second
	}
	now := clockOf(b.Clock).Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.pauseTil) {
		return b.pauseTil.Sub(now) // already pausing: one round grows it once
	}
	switch {
	case b.pauseLen < first:
		b.pauseLen = first
	case b.pauseLen < most:
		b.pauseLen = min(2*b.pauseLen, most)
	}
	d := b.pauseLen/2 + rand.N(b.pauseLen/2+1) // jittered: workers do not return together
	b.pauseTil = now.Add(d)
	return d
}

// Succeeded shortens the next pause: KMS keeps up again.
func (b *Backoff) Succeeded() {
	b.mu.Lock()
	b.pauseLen /= 2
	b.mu.Unlock()
}

// Clock is the time source of Backoff and Limiter; tests give a fake one.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or returns ctx's cause if ctx ends first.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func clockOf(c Clock) Clock {
	if c == nil {
		return realClock{}
	}
	return c
}
