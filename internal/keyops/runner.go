package keyops

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/kmserr"
	"github.com/mariadb-go/aws_key_management/internal/lockedmem"
	"github.com/mariadb-go/aws_key_management/internal/logtext"
	"github.com/mariadb-go/aws_key_management/internal/ratelimit"
)

// Defaults of Runner.
const (
	DefaultParallel = 16
	// DefaultAttempts is how many times Call tries a KMS call that failed
	// with a throttling or transient error (each try has the SDK's own
	// 3 attempts).
	DefaultAttempts = 6
	DefaultBackoff  = 200 * time.Millisecond
	// MaxBackoff caps the shared pause.
	MaxBackoff = 5 * time.Second
	// Unreachable is how many KMS calls in a row may fail to reach KMS
	// (network errors and timeouts, each after the SDK's own attempts;
	// missing credentials) before the runner stops calling: the rest of
	// the run fails at once instead of each file waiting for its
	// timeouts.
	Unreachable = 8
	// KeySlotSize is the size of each key buffer: larger than any key
	// the server takes (32 bytes), so that a longer key is reported with
	// its length rather than refused by the client.
	KeySlotSize = 64
)

// Progress is told how many items are done; Finish ends it.
type Progress interface {
	Add(n int)
	Finish()
}

// Runner runs work on every key file with bounded parallelism and a
// shared backoff (ratelimit.Backoff, as the plugin's start): a
// throttling or transient KMS error pauses every worker (KMS is the same
// for all), the pause growing with each such error and shrinking with
// each success. The pace of each request is the KMS client's adaptive
// rate (kmsbackend, ratelimit.Limiter). Its zero value works with the
// defaults.
type Runner struct {
	Parallel int           // workers; 0 means DefaultParallel
	Attempts int           // tries of a failing KMS call; 0 means DefaultAttempts
	Backoff  time.Duration // first pause; 0 means DefaultBackoff
	// NewProgress, if set, makes the progress display of one run (the
	// CLI gives one on a terminal only).
	NewProgress func(total int, what string) Progress

	throttled, retried atomic.Int64
	// unreachable counts calls in a row that did not reach KMS; broken
	// is the error that made the runner stop calling.
	unreachable atomic.Int64
	broken      atomic.Pointer[error]
	// LockError is set after a run when the key memory could not be
	// locked (it stays out of core dumps).
	LockError error

	pauseOnce sync.Once
	pause     *ratelimit.Backoff
}

// Throttled is how many KMS calls came back throttled (after the SDK's
// own retries) and were tried again after a pause.
func (r *Runner) Throttled() int { return int(r.throttled.Load()) }

// Retried is how many KMS calls were tried again after a throttling or
// transient error.
func (r *Runner) Retried() int { return int(r.retried.Load()) }

// Worker is what the work on one key file gets: two key buffers of
// KeySlotSize bytes in locked memory (wiped before and after each file)
// and the runner, for Call.
type Worker struct {
	A, B   []byte
	runner *Runner
}

// Call runs one KMS call through the runner's backoff (see Runner.Call).
func (w *Worker) Call(ctx context.Context, f func(context.Context) error) error {
	return w.runner.Call(ctx, f)
}

// Each runs fn on every entry (i is its index), at most Parallel at a
// time, and returns fn's error for each entry (same order; nil for
// success). A panic in fn
// becomes that entry's error. Entries not started when ctx ends get
// ctx's error. The error return is for setup failures only.
func (r *Runner) Each(ctx context.Context, entries []keyfile.Entry, what string, fn func(ctx context.Context, w *Worker, i int, e keyfile.Entry) error) ([]error, error) {
	errs := make([]error, len(entries))
	if len(entries) == 0 {
		return errs, nil
	}
	n := r.Parallel
	if n <= 0 {
		n = DefaultParallel
	}
	n = min(n, len(entries))
	mem := lockedmem.NewSized(KeySlotSize)
	defer mem.Close(true) // after wg.Wait below: no slot is in use then
	slots := make([][]byte, 2*n)
	for i := range slots {
		var err error
		if slots[i], err = mem.Alloc(); err != nil {
			return nil, fmt.Errorf("memory for keys: %w", err)
		}
	}
	_, r.LockError = mem.Locked()
	var progress Progress
	if r.NewProgress != nil {
		progress = r.NewProgress(len(entries), what)
		defer progress.Finish()
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &Worker{A: slots[2*g], B: slots[2*g+1], runner: r}
			defer func() { mem.Release(w.A); mem.Release(w.B) }()
			for i := range jobs {
				errs[i] = runOne(ctx, w, i, entries[i], fn)
				clear(w.A)
				clear(w.B)
				if progress != nil {
					progress.Add(1)
				}
			}
		}()
	}
feed:
	for i := range entries {
		if ctx.Err() != nil {
			for j := i; j < len(entries); j++ {
				errs[j] = context.Cause(ctx)
			}
			break
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			for j := i; j < len(entries); j++ {
				errs[j] = context.Cause(ctx)
			}
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return errs, nil
}

func runOne(ctx context.Context, w *Worker, i int, e keyfile.Entry, fn func(context.Context, *Worker, int, keyfile.Entry) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error on %s: %s", keyfile.Name(e.ID, e.Version), logtext.Panic(p))
		}
	}()
	return fn(ctx, w, i, e)
}

// Call runs f, a KMS call. While it fails because KMS throttles or has
// a passing failure of its own (KMSInternalException,
// DependencyTimeoutException, KMSInvalidStateException), it is tried
// again, at most Attempts times, after a pause shared by every worker of
// the runner. A call that did not reach KMS (network, timeout,
// credentials) is not tried again here (the SDK already tried it 3
// times); after Unreachable of them in a row the runner stops calling
// and fails every later call at once. Other errors, and ctx ending,
// return at once.
func (r *Runner) Call(ctx context.Context, f func(context.Context) error) error {
	attempts := r.Attempts
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	for attempt := 1; ; attempt++ {
		if b := r.broken.Load(); b != nil {
			return fmt.Errorf("not tried: %d KMS calls in a row failed to reach KMS, the last with: %w", Unreachable, *b)
		}
		if err := r.backoff().Wait(ctx); err != nil {
			return err
		}
		err := f(ctx)
		if err == nil {
			r.unreachable.Store(0)
			r.backoff().Succeeded()
			return nil
		}
		var ke *kmserr.Error
		if !errors.As(err, &ke) || ctx.Err() != nil {
			return err
		}
		if ke.Code == kmserr.CodeRequestError || ke.Code == kmserr.CodeTimeout {
			if ke.Transient() && r.unreachable.Add(1) >= Unreachable {
				r.broken.CompareAndSwap(nil, &err)
			}
			return err
		}
		r.unreachable.Store(0)
		if !ke.Transient() || attempt >= attempts {
			return err
		}
		if ke.Throttled() {
			r.throttled.Add(1)
		}
		r.retried.Add(1)
		r.backoff().Failed()
	}
}

// backoff is the runner's shared pause (made on first use: the zero
// Runner works).
func (r *Runner) backoff() *ratelimit.Backoff {
	r.pauseOnce.Do(func() {
		r.pause = &ratelimit.Backoff{First: r.Backoff, Max: MaxBackoff}
		if r.pause.First <= 0 {
			r.pause.First = DefaultBackoff
		}
	})
	return r.pause
}
