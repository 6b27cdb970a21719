package keys

import (
	"context"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/logtext"
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
}

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
// workers (shared, growing, jittered backoff) and the version is tried
// again, until ctx ends; damaged files are not retried. What fails or is not done before ctx ends stays for the
// first use to unwrap, with the usual backoff. It never fails the plugin.
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
		mu       sync.Mutex
		res      = PreloadResult{}
		pauseTil time.Time
		pauseLen time.Duration
	)
	waitPause := func() bool {
		if ctx.Err() != nil {
			return false // over time: leave the rest to first use
		}
		mu.Lock()
		d := time.Until(pauseTil)
		mu.Unlock()
		if d <= 0 {
			return true
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	slowDown := func() {
		mu.Lock()
		defer mu.Unlock()
		if time.Now().Before(pauseTil) {
			return // already pausing: one round of failures grows it once
		}
		if pauseLen == 0 {
			pauseLen = cfg.Backoff
		} else if pauseLen < 5*time.Second {
			pauseLen *= 2
		}
		d := pauseLen/2 + rand.N(pauseLen/2+1)
		if until := time.Now().Add(d); until.After(pauseTil) {
			pauseTil = until
		}
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
					if !waitPause() {
						err = context.Cause(ctx)
						break
					}
					if err = m.unwrap(id, ver, true); err == nil || !transient(err) {
						break
					}
					// Throttled or down: KMS is the same for every
					// worker, so all of them pause.
					slowDown()
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
					pauseLen /= 2 // KMS keeps up again: shorten the next pause
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
