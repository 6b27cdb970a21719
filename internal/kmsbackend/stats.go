package kmsbackend

import (
	"context"
	"fmt"
	"sync/atomic"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"github.com/mariadb-go/aws_key_management/internal/kmserr"
)

// opCount counts the calls and HTTP attempts of one KMS operation.
type opCount struct {
	calls, attempts, throttled atomic.Int64
}

// counts are the Client's per-operation counters (SHOW GLOBAL STATUS):
// the SDK retries inside one call, so only the stack sees attempts.
type counts struct {
	decrypt, generate, other opCount
}

func (c *counts) of(op string) *opCount {
	switch op {
	case opDecrypt:
		return &c.decrypt
	case opGenerate:
		return &c.generate
	}
	return &c.other
}

// addCounting installs two middlewares: one around the whole call (before
// the SDK's Retry step) and one around each HTTP attempt (after it).
func (c *counts) addCounting(stack *middleware.Stack) error {
	call := middleware.FinalizeMiddlewareFunc("AKMCallCount", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		c.of(awsmiddleware.GetOperationName(ctx)).calls.Add(1)
		return next.HandleFinalize(ctx, in)
	})
	attempt := middleware.FinalizeMiddlewareFunc("AKMAttemptCount", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		op := awsmiddleware.GetOperationName(ctx)
		oc := c.of(op)
		oc.attempts.Add(1)
		out, md, err := next.HandleFinalize(ctx, in)
		if err != nil && kmserr.New(op, err).Throttled() {
			oc.throttled.Add(1)
		}
		return out, md, err
	})
	if err := stack.Finalize.Insert(call, "Retry", middleware.Before); err != nil {
		return fmt.Errorf("adding call counting: %w", err)
	}
	if err := stack.Finalize.Insert(attempt, "Retry", middleware.After); err != nil {
		return fmt.Errorf("adding attempt counting: %w", err)
	}
	return nil
}

// Attempts reports, for a KMS operation (Decrypt or
// GenerateDataKeyWithoutPlaintext), how many HTTP attempts the client
// made, how many of them were retries, and how many were throttled.
func (c *Client) Attempts(op string) (attempts, retries, throttled int64) {
	if c.count == nil {
		return 0, 0, 0
	}
	oc := c.count.of(op)
	attempts = oc.attempts.Load()
	return attempts, max(0, attempts-oc.calls.Load()), oc.throttled.Load()
}
