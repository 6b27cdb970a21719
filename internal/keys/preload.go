package keys

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/logtext"
	"github.com/mariadb-go/aws_key_management/internal/ratelimit"
)

// PreloadConfig bounds Preload.
type PreloadConfig struct {
	// Parallel is how many KMS Decrypt calls may be in flight at once
	// (KMS quotas are per account and region); 0 means 16.
	Parallel int
	// Attempts is how many times Preload tries a version whose unwrap
	// failed with a throttling or transient error (each try is one backend
	// call, with the backend's own retries); 0 means until ctx ends. The
	// default matters: InnoDB remembers a key it could not get when it
	// opens a tablespace at start and never asks again, so riding out a
	// short outage here (network or credentials not ready at boot) is
	// worth the wait.
	Attempts int
	// Backoff is the first pause of all workers after a throttling or
	// transient error; it doubles with each such error, up to 5 s, and
	// halves with each success; the pause is jittered. 0 means 100 ms.
	Backoff time.Duration
	// Stall, if set, ends Preload once no version has loaded for that
	// long (KMS down, no credentials): what is left stays for first use.
	// A throttled start that keeps loading is never cut short by it:
	// every key is in memory before the server asks for it.
	Stall time.Duration
}

// errStalled ends a Preload that stopped making progress.
var errStalled = errors.New("no key version unwrapped for the stall limit")

// PreloadResult says what Preload did.
type PreloadResult struct {
	Versions, Loaded, Failed int
	Elapsed                  time.Duration
	// FirstErr is the first failure's error (nil if none failed).
	FirstErr error
}

// Preload unwraps every key version on disk, at most cfg.Parallel at a
// time, so that the server's first requests are served from memory. A
// throttling or transient error (KMS down, 5xx, network) pauses all
// workers (ratelimit.Backoff) and the version is tried again, until ctx
// ends or nothing has loaded for cfg.Stall; damaged files are not
// retried. The pace of the calls themselves is the KMS client's (its
// adaptive rate, shared with every other caller of the process). What
// fails or is not done by then stays for the first use to unwrap, with
// the usual backoff. It never fails the plugin.
func (m *Manager) Preload(ctx context.Context, cfg PreloadConfig) PreloadResult {
	if cfg.Parallel <= 0 {
		cfg.Parallel = 16
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	start := time.Now()
	if !m.enter() {
		return PreloadResult{}
	}
	defer m.leave()
	// The versions on disk, not 1..latest: versions need not be
	// contiguous (old ones pruned), and a stray huge version number must
	// not turn into billions of lookups.
	entries, err := m.cfg.Store.Scan()
	if err != nil {
		m.cfg.Log.Warning(err.Error() + "; keys are unwrapped on first use")
		return PreloadResult{Elapsed: time.Since(start)}
	}
	m.mu.RLock()
	var work []uint64
	for _, e := range entries {
		if v := m.keys[kv(e.ID, e.Version)]; v == nil || v.key == nil {
			work = append(work, kv(e.ID, e.Version))
		}
	}
	m.mu.RUnlock()
	// Newest versions first: they encrypt new pages.
	sort.Slice(work, func(i, j int) bool {
		if uint32(work[i]) != uint32(work[j]) {
			return uint32(work[i]) > uint32(work[j])
		}
		return work[i] < work[j]
	})

	var (
		mu    sync.Mutex
		res   = PreloadResult{}
		pause = &ratelimit.Backoff{First: cfg.Backoff}
	)
	// Stall: give up once nothing has loaded for that long (KMS down,
	// credentials missing); a start that is slow but loading goes on.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	progress := func() {}
	if cfg.Stall > 0 {
		stall := time.AfterFunc(cfg.Stall, func() { cancel(errStalled) })
		defer stall.Stop()
		progress = func() { stall.Reset(cfg.Stall) }
	}

	jobs := make(chan uint64)
	var wg sync.WaitGroup
	for w := 0; w < min(cfg.Parallel, len(work)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					m.cfg.Log.Error("internal error while unwrapping keys at start: " + logtext.Panic(r))
				}
			}()
			for k := range jobs {
				id, ver := uint32(k>>32), uint32(k)
				err := ctx.Err()
				for attempt := 1; (cfg.Attempts == 0 || attempt <= cfg.Attempts) && ctx.Err() == nil; attempt++ {
					if err = pause.Wait(ctx); err != nil {
						break // over time: leave the rest to first use
					}
					if err = m.unwrap(id, ver, true); err == nil || !transient(err) {
						break
					}
					// Throttled or down: KMS is the same for every
					// worker, so all of them pause.
					pause.Failed()
				}
				if err != nil {
					// Preload's own retries are not the server's: the
					// first use may try again after the shortest wait.
					m.resetBackoff(id, ver)
				}
				mu.Lock()
				res.Versions++
				if err == nil {
					res.Loaded++
					pause.Succeeded()
					progress()
				} else {
					res.Failed++
					if res.FirstErr == nil {
						res.FirstErr = err
					}
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, k := range work {
		if ctx.Err() != nil {
			break // select would pick at random between ready cases
		}
		select {
		case jobs <- k:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	res.Failed += len(work) - res.Versions // not reached before ctx ended
	res.Versions = len(work)
	res.Elapsed = time.Since(start)
	m.count.start.Store(&res)
	return res
}
