package kmsbackend

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// ExpirationVariable is set by iam-kms-wrapper (and by the AWS CLI's
// credential export) next to session credentials: when they end, in RFC
// 3339. The SDK does not read it; the plugin only logs it.
const ExpirationVariable = "AWS_CREDENTIAL_EXPIRATION"

// sessionExpiry reads AWS_CREDENTIAL_EXPIRATION and returns the lines to
// log at start: a note while the session lasts, a warning once it has
// ended or when the value cannot be read. It counts only next to
// credentials in the environment (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY), which the SDK's chain uses first.
func sessionExpiry(getenv func(string) string, now time.Time) (note, warning string) {
	v := strings.TrimSpace(getenv(ExpirationVariable))
	if v == "" || getenv("AWS_ACCESS_KEY_ID") == "" || getenv("AWS_SECRET_ACCESS_KEY") == "" {
		return "", ""
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return "", fmt.Sprintf("%s=%q is not an RFC 3339 time (2006-01-02T15:04:05Z); when the session credentials expire is unknown", ExpirationVariable, v)
	}
	return expiryLine(t, now)
}

// expiryLine is "session credentials expire at <UTC> (in N min)", or the
// warning for a session that has already ended.
func expiryLine(t, now time.Time) (note, warning string) {
	at := t.UTC().Format("2006-01-02 15:04:05 UTC")
	left := t.Sub(now)
	if left <= 0 {
		return "", fmt.Sprintf("session credentials expired at %s (%d min ago): KMS refuses them (ExpiredTokenException), so no key can be unwrapped or created; restart the server through iam-kms-wrapper with a new MFA code, or give it fresh credentials",
			at, int(-left/time.Minute))
	}
	return fmt.Sprintf("session credentials expire at %s (in %d min); after that keys already loaded keep working but no new key can be created until the server gets fresh credentials",
		at, int((left+time.Minute-1)/time.Minute)), ""
}

// expiryNotice wraps the SDK's credentials provider: each new set of
// credentials that can expire (from a credentials process, SSO, a role)
// is logged once with its expiry. Environment credentials carry none:
// sessionExpiry covers those.
type expiryNotice struct {
	next aws.CredentialsProvider
	log  func(note, warning string)
	now  func() time.Time

	mu   sync.Mutex
	seen time.Time
}

func (e *expiryNotice) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := e.next.Retrieve(ctx)
	if err != nil || !c.CanExpire || c.Expires.IsZero() {
		return c, err
	}
	e.mu.Lock()
	fresh := !c.Expires.Equal(e.seen)
	e.seen = c.Expires
	e.mu.Unlock()
	if fresh {
		e.log(expiryLine(c.Expires, e.now()))
	}
	return c, nil
}
