package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Outcome is what became of one paced request.
type Outcome int

const (
	// Success: KMS answered (any answer but throttling that says the
	// request was served counts; the caller decides).
	Success Outcome = iota
	// Throttled: KMS refused the request for the rate (ThrottlingException).
	Throttled
	// Other: a failure that says nothing about the rate (network, 5xx,
	// a refused key): the rate stays as it is.
	Other
)

// Defaults of Limiter's fields.
const (
	DefaultInitial  = 250.0 // requests/s before the first throttling
	DefaultMin      = 1.0   // requests/s: the floor of a cut
	DefaultBeta     = 0.8   // a cut keeps this share of what KMS served
	DefaultIncrease = 0.2   // requests/s added per second of successes after a cut, at least
	DefaultGrowth   = 0.05  // share of the rate added per second of successes, if more
	DefaultWindow   = time.Second
	DefaultForget   = 30 * time.Second
	DefaultProbe    = 6 * time.Second // slow start again after this long without throttling
	DefaultHold     = 200 * time.Millisecond
	DefaultAccel    = 3 * time.Second // the growth doubles for each Accel since the last cut
)

// Limiter is an adaptive client-side request rate, one per process,
// shared by every worker that calls KMS.
//
// Until KMS first throttles it paces requests at Initial per second and
// grows that by one per success (slow start: the rate doubles for each
// rate's worth of successes), so an unthrottled start is limited only by
// the callers' own parallelism. The first ThrottlingException sets the
// rate to Beta times the rate at which KMS served this process over the
// last Window (its share of the quota, as far as it can tell); with
// nothing served yet, slow start begins again from Min. After that each
// throttling cuts the rate by Beta, and successes add Increase or Growth
// of the rate per second, whichever is more, times 1 + the seconds since
// the last cut over Accel (gentle right after a cut, faster the longer
// KMS keeps up: additive increase, multiplicative decrease, so processes
// sharing one quota converge on their shares with few throttled
// requests). Throttles of requests sent before a cut, or within Hold
// after it, do not cut again: they were in flight, or KMS's bucket had
// no time to refill. After Probe with no throttling slow start resumes
// from the current rate (a process left with a small share after the
// start, or with quota freed by others that finished, catches up); after
// Forget it starts over from Initial if that is more.
//
// TestFleetSharesQuota simulates 16 processes on one quota with these
// defaults.
//
// The zero value is not usable: call NewLimiter.
type Limiter struct {
	Initial, Min, Beta, Increase, Growth float64
	Window, Forget, Hold, Accel, Probe   time.Duration
	clock                                Clock

	mu      sync.Mutex
	rate    float64     // requests per second
	slow    bool        // slow start: no throttling seen yet
	next    time.Time   // the earliest send time of the next request
	lastCut time.Time   // when the rate was last cut
	lastThr time.Time   // the last throttled answer
	ok      []time.Time // successes, oldest first, from ok[head]
	head    int
	stats   Stats
}

// Stats counts what a Limiter saw.
type Stats struct {
	Requests, Throttled, Cuts int64
	Rate                      float64 // current rate; 0 while in slow start
}

// Ticket is handed out by Wait and given back to Done.
type Ticket struct{ sent time.Time }

// NewLimiter returns a Limiter with the Default* settings on clock (nil:
// the real clock). Fields may be changed before first use.
func NewLimiter(clock Clock) *Limiter {
	return &Limiter{
		Initial: DefaultInitial, Min: DefaultMin, Beta: DefaultBeta, Increase: DefaultIncrease, Growth: DefaultGrowth,
		Window: DefaultWindow, Forget: DefaultForget, Hold: DefaultHold, Accel: DefaultAccel, Probe: DefaultProbe,
		clock: clockOf(clock),
	}
}

// Take takes a send slot if one is free now (ok, and the Ticket to give
// Done); else it returns how long until the next one is due, which the
// caller waits before asking again: a rate changed meanwhile applies to
// callers already waiting.
func (l *Limiter) Take() (wait time.Duration, t Ticket, ok bool) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	quiet := now.Sub(l.lastThr)
	switch {
	case l.rate == 0:
		l.rate, l.slow = l.Initial, true
	case !l.slow && quiet > l.Probe:
		l.slow = true // KMS has kept up for a while: probe fast again
	}
	if l.slow && quiet > l.Forget && l.rate < l.Initial {
		l.rate = l.Initial
	}
	if l.next.After(now) {
		return l.next.Sub(now), Ticket{}, false
	}
	l.stats.Requests++
	interval := time.Duration(float64(time.Second) / l.rate)
	// Slots not used while nobody asked are not saved up.
	l.next = now.Add(interval)
	return 0, Ticket{sent: now}, true
}

// Wait waits for a send slot; it returns ctx's cause if ctx ends first.
func (l *Limiter) Wait(ctx context.Context) (Ticket, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Ticket{}, context.Cause(ctx)
		}
		d, t, ok := l.Take()
		if ok {
			return t, nil
		}
		if err := l.clock.Sleep(ctx, d); err != nil {
			return Ticket{}, err
		}
	}
}

// Done reports the outcome of the request of t.
func (l *Limiter) Done(t Ticket, o Outcome) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch o {
	case Success:
		l.served(now)
		l.ok = append(l.ok, now)
		if l.slow {
			l.rate++
		} else {
			// Per second of successes: Increase, or Growth of the rate
			// if that is more.
			accel := 1 + now.Sub(l.lastCut).Seconds()/l.Accel.Seconds()
			l.rate += accel * max(l.Increase, l.Growth*l.rate) / l.rate
		}
	case Throttled:
		l.stats.Throttled++
		l.lastThr = now
		if t.sent.Before(l.lastCut.Add(l.Hold)) {
			// Sent before the last cut, or so soon after it that KMS's
			// bucket had no time to refill: already reacted to.
			return
		}
		next, slow := l.Beta*l.rate, false
		if l.slow {
			// The slow start's rate says nothing of the quota, and what
			// KMS served lately includes its burst allowance: half of
			// that (TCP's halving). With nothing served yet there is no
			// measure at all: start slowly again from Min.
			served := float64(l.served(now)) / l.Window.Seconds()
			next = l.Beta * min(served, l.rate)
			slow = served == 0
		}
		l.rate = max(l.Min, next)
		l.slow = slow
		l.lastCut = now
		l.stats.Cuts++
		// The next slot is at least one interval of the new rate away.
		if at := now.Add(time.Duration(float64(time.Second) / l.rate)); at.After(l.next) {
			l.next = at
		}
	}
}

// served counts the successes within Window of now and drops older ones.
func (l *Limiter) served(now time.Time) int {
	cut := now.Add(-l.Window)
	for l.head < len(l.ok) && !l.ok[l.head].After(cut) {
		l.head++
	}
	if l.head > len(l.ok)/2 { // compact now and then: amortized O(1)
		l.ok = append(l.ok[:0], l.ok[l.head:]...)
		l.head = 0
	}
	return len(l.ok) - l.head
}

// Stats returns the counts so far and the current rate.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	if !l.slow {
		s.Rate = l.rate
	}
	return s
}
