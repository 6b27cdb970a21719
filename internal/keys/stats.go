package keys

import (
	"sync/atomic"
	"time"
)

// KMS operations, as the counters name them.
const (
	OpDecrypt  = "Decrypt"
	OpGenerate = "GenerateDataKeyWithoutPlaintext"
)

// opCounters counts the KMS calls of one operation.
type opCounters struct {
	calls, errors atomic.Int64
}

// counters are what the Manager counts for SHOW GLOBAL STATUS; they are
// updated where the work happens, without the Manager's lock.
type counters struct {
	decrypt, generate  opCounters
	lastOK, lastFailed atomic.Int64 // Unix nanoseconds of the last KMS call's end; 0: none yet
	start              atomic.Pointer[PreloadResult]
}

// kmsDone counts one KMS call of op that ended with err.
func (c *counters) kmsDone(op *opCounters, err error, now time.Time) {
	op.calls.Add(1)
	if err != nil {
		op.errors.Add(1)
		c.lastFailed.Store(now.UnixNano())
		return
	}
	c.lastOK.Store(now.UnixNano())
}

// OpStats counts the KMS calls of one operation the Manager made (a call
// is what the backend does for one request: its own retries included).
type OpStats struct {
	Calls, Errors int64
}

// Stats is a snapshot of the Manager's state and counters.
type Stats struct {
	// KeyIDs is how many key ids have a loaded version; Versions how many
	// versions are loaded; Failed how many versions failed to unwrap at
	// their last attempt (and are not loaded).
	KeyIDs, Versions, Failed int
	Decrypt, Generate        OpStats
	// LastSuccess and LastFailure are when the last KMS call that
	// succeeded (failed) ended; zero if none.
	LastSuccess, LastFailure time.Time
	// Start is what the unwrap at start did (zero before it ran).
	Start PreloadResult
}

// Stats returns the Manager's counters and how many keys it holds.
func (m *Manager) Stats() Stats {
	var s Stats
	m.mu.RLock()
	s.KeyIDs = len(m.best) // only loaded versions enter best
	for _, v := range m.keys {
		switch {
		case v.key != nil:
			s.Versions++
		case v.failures > 0:
			s.Failed++
		}
	}
	m.mu.RUnlock()
	c := &m.count
	s.Decrypt = OpStats{Calls: c.decrypt.calls.Load(), Errors: c.decrypt.errors.Load()}
	s.Generate = OpStats{Calls: c.generate.calls.Load(), Errors: c.generate.errors.Load()}
	if t := c.lastOK.Load(); t != 0 {
		s.LastSuccess = time.Unix(0, t)
	}
	if t := c.lastFailed.Load(); t != 0 {
		s.LastFailure = time.Unix(0, t)
	}
	if p := c.start.Load(); p != nil {
		s.Start = *p
	}
	return s
}
