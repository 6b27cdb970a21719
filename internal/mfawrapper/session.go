package mfawrapper

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// STS is the part of *sts.Client the wrapper uses; tests substitute it.
type STS interface {
	GetSessionToken(ctx context.Context, in *sts.GetSessionTokenInput, opts ...func(*sts.Options)) (*sts.GetSessionTokenOutput, error)
}

var _ STS = (*sts.Client)(nil)

// DefaultRegion is used when the SDK's configuration names none.
const DefaultRegion = "us-east-1"

// NewSTS builds an STS client from the SDK's standard configuration:
// credentials chain, region, AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL and
// the shared config files; opts add to it.
func NewSTS(ctx context.Context, opts ...func(*config.LoadOptions) error) (*sts.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	return sts.NewFromConfig(cfg), nil
}

// Session is a set of temporary credentials.
type Session struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	Expires                                    time.Time
}

// GetSession calls STS GetSessionToken with the MFA device and code.
func GetSession(ctx context.Context, api STS, serial, code string, duration time.Duration) (Session, error) {
	out, err := api.GetSessionToken(ctx, &sts.GetSessionTokenInput{
		DurationSeconds: aws.Int32(int32(duration / time.Second)),
		SerialNumber:    aws.String(serial),
		TokenCode:       aws.String(code),
	})
	if err != nil {
		return Session{}, fmt.Errorf("STS GetSessionToken for MFA device %s: %w%s", serial, err, advice(err))
	}
	c := out.Credentials
	if c == nil || aws.ToString(c.AccessKeyId) == "" || aws.ToString(c.SecretAccessKey) == "" || aws.ToString(c.SessionToken) == "" || c.Expiration == nil {
		return Session{}, fmt.Errorf("STS GetSessionToken for MFA device %s: the answer lacks credentials", serial)
	}
	return Session{
		AccessKeyID:     *c.AccessKeyId,
		SecretAccessKey: *c.SecretAccessKey,
		SessionToken:    *c.SessionToken,
		Expires:         c.Expiration.UTC(),
	}, nil
}

// advice says what to do about the usual STS refusals.
func advice(err error) string {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		if strings.Contains(err.Error(), "get identity") {
			return "; no usable AWS credentials for the STS call: set AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a credentials file"
		}
		return " (check the network path to STS and AWS_ENDPOINT_URL_STS)"
	}
	switch ae.ErrorCode() {
	case "AccessDenied":
		if strings.Contains(ae.ErrorMessage(), "MultiFactorAuthentication") {
			return "; the code was refused: write the device's current code (codes change every 30 s), and check kms_mfa_id names this user's MFA device"
		}
		return "; the wrapper's own AWS credentials (long-term keys of an IAM user) may not call GetSessionToken"
	case "InvalidClientTokenId", "SignatureDoesNotMatch":
		return "; the wrapper's own AWS credentials were refused: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the credentials file"
	case "ExpiredToken":
		return "; the wrapper must start from long-term credentials, not expired session ones"
	}
	return ""
}

// EnvVars are the variables Environ sets, in order.
var EnvVars = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CREDENTIAL_EXPIRATION"}

// Environ returns base with the session's credentials set (replacing any
// earlier values): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN and AWS_CREDENTIAL_EXPIRATION (RFC 3339, UTC), which
// the plugin reads to log when the session ends.
func Environ(base []string, s Session) []string {
	vals := []string{s.AccessKeyID, s.SecretAccessKey, s.SessionToken, s.Expires.UTC().Format(time.RFC3339)}
	out := make([]string, 0, len(base)+len(EnvVars))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		replaced := false
		for _, v := range EnvVars {
			replaced = replaced || name == v
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	for i, v := range EnvVars {
		out = append(out, v+"="+vals[i])
	}
	return out
}
