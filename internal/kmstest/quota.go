package kmstest

import (
	"fmt"
	"time"
)

// Limits are the account-wide request quota and the latency of every KMS
// call, as an account in a busy region has them.
type Limits struct {
	// Quota is the shared request quota in requests per second across
	// all clients (0: none). Requests over it get ThrottlingException
	// "Rate exceeded." with HTTP 400 at once, as AWS KMS answers; the
	// bucket holds one second of quota, so a burst of up to Quota
	// requests passes.
	Quota float64
	// Latency is added to every call that is not throttled (on top of
	// an injected delay=).
	Latency time.Duration
}

// LimitStats counts what the quota did since the last ResetCalls.
type LimitStats struct {
	Limits
	Requests, Throttled int
}

// SetLimits replaces the quota and latency; the bucket starts full.
func (s *Server) SetLimits(l Limits) error {
	if l.Quota < 0 || l.Latency < 0 {
		return fmt.Errorf("limits: quota %v and latency %v must not be negative", l.Quota, l.Latency)
	}
	s.mu.Lock()
	s.limits, s.tokens, s.filled = l, l.Quota, s.now()
	s.mu.Unlock()
	return nil
}

// LimitStats returns the limits in force and the requests and throttled
// requests counted since the last ResetCalls.
func (s *Server) LimitStats() LimitStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return LimitStats{Limits: s.limits, Requests: s.requests, Throttled: s.throttled}
}

// admit takes a token from the quota's bucket; false: throttle. Called
// with s.mu held, once per KMS request.
func (s *Server) admit() bool {
	s.requests++
	q := s.limits.Quota
	if q <= 0 {
		return true
	}
	now := s.now()
	s.tokens = min(q, s.tokens+now.Sub(s.filled).Seconds()*q)
	s.filled = now
	if s.tokens < 1 {
		s.throttled++
		return false
	}
	s.tokens--
	return true
}
