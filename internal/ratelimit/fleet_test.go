package ratelimit

import (
	"container/heap"
	"context"
	"testing"
	"time"
)

// simClock is the virtual time of the fleet simulation.
type simClock struct{ now time.Time }

func (c *simClock) Now() time.Time { return c.now }
func (c *simClock) Sleep(context.Context, time.Duration) error {
	panic("the simulation uses Reserve, never Sleep")
}

type simEvent struct {
	at     time.Time
	seq    int // ties in order of creation: deterministic
	proc   int
	send   bool // true: the request leaves; false: its answer arrives
	ok     bool
	ticket Ticket
}

type simQueue []*simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type fleetResult struct {
	ready              time.Duration // the last process's last key
	requests, throttle int
}

// simulateFleet runs n processes of `workers` workers each, every one
// with its own Limiter, loading k keys against one KMS quota of q
// requests/s (a token bucket holding one second of quota) that answers
// a served request after latency and a throttled one after 1 ms; the
// processes start stagger apart. Everything runs in virtual time.
func simulateFleet(n, k, workers int, q float64, latency, stagger time.Duration) fleetResult {
	clock := &simClock{now: time.Unix(1_000_000, 0)}
	start := clock.now
	var ev simQueue
	seq := 0
	push := func(e *simEvent) { seq++; e.seq = seq; heap.Push(&ev, e) }
	lims := make([]*Limiter, n)
	left := make([]int, n)   // keys not yet loaded
	queued := make([]int, n) // keys not yet taken by a worker
	tokens, filled := q, start
	var res fleetResult
	want := func(p int, at time.Time) { // a worker of p wants to send
		push(&simEvent{at: at, proc: p, send: true})
	}
	for p := range n {
		lims[p] = NewLimiter(clock)
		left[p], queued[p] = k, k
		at := start.Add(time.Duration(p) * stagger)
		for range min(workers, k) {
			queued[p]--
			want(p, at)
		}
	}
	for ev.Len() > 0 {
		e := heap.Pop(&ev).(*simEvent)
		clock.now = e.at
		p := e.proc
		if e.send {
			d, t, ok := lims[p].Take()
			if !ok {
				want(p, clock.now.Add(d))
				continue
			}
			res.requests++
			tokens = min(q, tokens+clock.now.Sub(filled).Seconds()*q)
			filled = clock.now
			if tokens >= 1 {
				tokens--
				push(&simEvent{at: clock.now.Add(latency), proc: p, ok: true, ticket: t})
			} else {
				res.throttle++
				push(&simEvent{at: clock.now.Add(time.Millisecond), proc: p, ticket: t})
			}
			continue
		}
		if !e.ok {
			lims[p].Done(e.ticket, Throttled)
			want(p, clock.now) // the same key again, paced
			continue
		}
		lims[p].Done(e.ticket, Success)
		left[p]--
		if left[p] == 0 {
			res.ready = max(res.ready, clock.now.Sub(start))
		}
		if queued[p] > 0 {
			queued[p]--
			want(p, clock.now)
		}
	}
	return res
}

// The fleet: 16 servers x 200 keys, 16 workers each, 20 ms per
// call, at a 200/s and an 80/s shared quota. Every key is loaded, the
// last server is ready within 1.2 x the physical limit N*K/Q, and under
// 10% of all requests are throttled. Virtual time: deterministic, no
// wall clock.
func TestFleetSharesQuota(t *testing.T) {
	for _, tc := range []struct {
		n, k int
		q    float64
	}{{16, 200, 200}, {16, 200, 80}, {4, 500, 100}, {1, 1000, 200}} {
		r := simulateFleet(tc.n, tc.k, 16, tc.q, 20*time.Millisecond, 5*time.Millisecond)
		limit := float64(tc.n*tc.k) / tc.q
		ratio := r.ready.Seconds() / limit
		share := float64(r.throttle) / float64(r.requests)
		t.Logf("%d x %d at %.0f/s: ready in %.1f s = %.2f x the limit %.0f s; %d of %d requests throttled (%.1f%%)",
			tc.n, tc.k, tc.q, r.ready.Seconds(), ratio, limit, r.throttle, r.requests, 100*share)
		if r.requests-r.throttle != tc.n*tc.k {
			t.Errorf("%d served requests, want %d", r.requests-r.throttle, tc.n*tc.k)
		}
		if ratio > 1.2 {
			t.Errorf("ready at %.2f x the physical limit, want at most 1.2", ratio)
		}
		if share >= 0.10 {
			t.Errorf("%.1f%% of requests throttled, want under 10%%", 100*share)
		}
	}
}
