package kmsbackend

import (
	"context"
	"fmt"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"github.com/mariadb-go/aws_key_management/internal/kmserr"
	"github.com/mariadb-go/aws_key_management/internal/ratelimit"
)

// addPacing puts every HTTP attempt of the client (the SDK's retries
// included) through the process's adaptive rate: it waits for a send
// slot before the attempt and reports after it whether KMS throttled.
func addPacing(l *ratelimit.Limiter) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		mw := middleware.FinalizeMiddlewareFunc("AKMPacing", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			t, err := l.Wait(ctx)
			if err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("waiting for the KMS request rate: %w", err)
			}
			out, md, err := next.HandleFinalize(ctx, in)
			l.Done(t, outcome(awsmiddleware.GetOperationName(ctx), err))
			return out, md, err
		})
		if err := stack.Finalize.Insert(mw, "Retry", middleware.After); err != nil {
			return fmt.Errorf("adding request pacing: %w", err)
		}
		return nil
	}
}

func outcome(op string, err error) ratelimit.Outcome {
	switch {
	case err == nil:
		return ratelimit.Success
	case kmserr.New(op, err).Throttled():
		return ratelimit.Throttled
	}
	return ratelimit.Other
}

// Pacing returns what the client's request rate saw: attempts,
// throttled attempts, cuts and the current rate (0: not limited yet).
func (c *Client) Pacing() ratelimit.Stats {
	if c.limiter == nil {
		return ratelimit.Stats{}
	}
	return c.limiter.Stats()
}
