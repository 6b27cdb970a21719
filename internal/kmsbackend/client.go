package kmsbackend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkrate "github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/mariadb-go/aws_key_management/internal/kmserr"
	"github.com/mariadb-go/aws_key_management/internal/ratelimit"
)

// API is the part of *kms.Client the plugin uses; tests substitute it.
type API interface {
	GenerateDataKeyWithoutPlaintext(ctx context.Context, in *kms.GenerateDataKeyWithoutPlaintextInput, opts ...func(*kms.Options)) (*kms.GenerateDataKeyWithoutPlaintextOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, opts ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

var _ API = (*kms.Client)(nil)

// DefaultRegion is used when neither aws_key_management_region nor the
// SDK configuration names one (upstream's C++ SDK default).
const DefaultRegion = "us-east-1"

// DefaultAttemptTimeout bounds one HTTP attempt when request_timeout is 0.
const DefaultAttemptTimeout = 10 * time.Second

// MaxAttempts is how many times a call is tried (throttling, 5xx and
// network errors are retried; other errors are not).
const MaxAttempts = 3

// MaxBackoff caps the SDK's random wait before a retry (its default cap
// is 20 s, and the wait before the third attempt can reach 4 s).
const MaxBackoff = 2 * time.Second

// backoffSlack is what a call's bound adds to its attempts' time for the
// waits between them: it must hold MaxAttempts-1 waits, or the last
// attempt is sometimes cut off by the call's own deadline.
const backoffSlack = 5 * time.Second

var _ = [1]struct{}{}[(MaxAttempts-1)*MaxBackoff/backoffSlack] // (MaxAttempts-1) waits fit the slack

// Config maps the plugin's system variables.
type Config struct {
	Region         string        // aws_key_management_region
	EndpointURL    string        // aws_key_management_endpoint_url
	RequestTimeout time.Duration // aws_key_management_request_timeout; 0 = default
	// DataDir is the server's datadir, the last place a credentials file
	// is looked for (see CredentialsFile).
	DataDir string
	// Log receives request logging per aws_key_management_log_level.
	Log *Logger
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// Credentials, if set, replace the SDK's credential chain (the
	// operator tool's MFA session credentials).
	Credentials aws.CredentialsProvider
	// Limiter paces every HTTP attempt (see internal/ratelimit); nil
	// means a new one for this client. One client per process, so one
	// rate for all of its workers.
	Limiter *ratelimit.Limiter
}

// Client makes the plugin's KMS calls.
type Client struct {
	api         API
	callTimeout time.Duration
	// decryptOpts add the middleware that takes the key out of a Decrypt
	// answer before the SDK reads it (New sets them; a test double of
	// NewWithAPI ignores them and returns the key in Plaintext).
	decryptOpts []func(*kms.Options)
	// Description says, for the error log, which region, endpoint and
	// credentials file the client uses (never the credentials, nor a
	// user:password@ part of the endpoint).
	Description string
	// count holds the calls and attempts by operation (New sets it).
	count *counts
	// limiter is the adaptive request rate of New's clients.
	limiter *ratelimit.Limiter
	// Warnings are lines for the plugin to log as warnings at start: an
	// endpoint other than the region's default is one.
	Warnings []string
	// Notes are lines for the plugin to log as notes at start: when the
	// session credentials of AWS_CREDENTIAL_EXPIRATION expire.
	Notes []string
}

// New loads the SDK's configuration (credentials chain, shared files,
// environment) and builds the one KMS client of this plugin lifetime.
func New(ctx context.Context, cfg Config) (*Client, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	// An endpoint override: the variable's, checked before anything
	// else; else one the SDK finds in the environment or the config file
	// (AWS_ENDPOINT_URL_KMS and kin), checked once the client is built.
	var ep endpoint
	if strings.TrimSpace(cfg.EndpointURL) != "" {
		var err error
		if ep, err = checkEndpoint(cfg.EndpointURL, EndpointVariable); err != nil {
			return nil, err
		}
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	credFile, credWhy := CredentialsFile(getenv, cfg.DataDir)
	// The SDK reads the files named here and no others; a file another
	// user could have written stops the client here, before the SDK
	// reads it (it could run a command: credential_process). The
	// credentials file's region line counts too.
	files := pickSharedFiles(getenv, cfg.DataDir)
	fileWarnings, err := files.check(os.Geteuid())
	if err != nil {
		return nil, err
	}
	opts = append(opts, files.loadOptions()...)
	if cfg.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(cfg.Credentials))
	}
	opts = append(opts, config.WithLogger(sdkLogger{cfg.Log}), config.WithClientLogMode(0))
	attempt := cfg.RequestTimeout
	if attempt <= 0 {
		attempt = DefaultAttemptTimeout
	}
	httpClient := awshttp.NewBuildableClient().
		WithTimeout(attempt).
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = attempt }).
		WithTransportOptions(func(t *http.Transport) {
			t.MaxResponseHeaderBytes = maxResponseHeader
			// HTTP/1.1 only: an answer then stays in the connection's
			// read buffers, overwritten by the next answer; over HTTP/2
			// it is also copied through the framer's and the streams'
			// pooled buffers (TestDecryptLeavesNoKeyCopies). The
			// transport was cloned from one already set up for HTTP/2:
			// take "h2" out of ALPN and its handler.
			var http1 http.Protocols
			http1.SetHTTP1(true)
			t.Protocols = &http1
			t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			if t.TLSClientConfig != nil {
				t.TLSClientConfig = t.TLSClientConfig.Clone()
				t.TLSClientConfig.NextProtos = []string{"http/1.1"}
			}
		})
	opts = append(opts, config.WithHTTPClient(httpClient))
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	if awsCfg.Credentials != nil && cfg.Log != nil && cfg.Log.Print != nil {
		// Credentials that expire are logged, with their expiry, when
		// the SDK first gets them (and again when it renews them).
		logAt := cfg.Log.Print
		awsCfg.Credentials = aws.NewCredentialsCache(&expiryNotice{next: awsCfg.Credentials, now: time.Now, log: func(note, warning string) {
			if note != "" {
				logAt(LogInfo, note)
			}
			if warning != "" {
				logAt(LogWarn, warning)
			}
		}})
	}
	var sdkEndpointErr error
	count := new(counts)
	limiter := cfg.Limiter
	if limiter == nil {
		limiter = ratelimit.NewLimiter(nil)
	}
	api := kms.NewFromConfig(awsCfg, func(o *kms.Options) {
		if ep.url == "" && o.BaseEndpoint != nil && *o.BaseEndpoint != "" {
			ep, sdkEndpointErr = checkEndpoint(*o.BaseEndpoint, sdkEndpointSource)
		}
		o.BaseEndpoint = nil
		if ep.url != "" {
			o.BaseEndpoint = aws.String(ep.url)
		}
		// awsCfg.HTTPClient is httpClient, with AWS_CA_BUNDLE applied
		// if set; the credential providers use it unwrapped.
		o.HTTPClient = boundedClient{next: awsCfg.HTTPClient, max: MaxResponseBody}
		if cfg.Log != nil {
			o.APIOptions = append(o.APIOptions, cfg.Log.addLogging)
		}
		o.APIOptions = append(o.APIOptions, count.addCounting, addPacing(limiter))
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = MaxAttempts
			so.MaxBackoff = MaxBackoff
			// No client-wide retry budget: after an outage it would
			// leave later calls with a single attempt.
			so.RateLimiter = sdkrate.None
		})
	})
	if sdkEndpointErr != nil {
		return nil, sdkEndpointErr
	}
	c := NewWithAPI(api, attempt)
	c.count = count
	c.limiter = limiter
	c.decryptOpts = []func(*kms.Options){func(o *kms.Options) {
		o.APIOptions = append(o.APIOptions, addPlaintextSink)
	}}
	where := "the region's default endpoint"
	if ep.url != "" {
		where = ep.shown
		c.Warnings = append(c.Warnings, ep.warning())
	}
	if cfg.Log != nil && cfg.Log.Endpoint == "" {
		cfg.Log.Endpoint = where
	}
	creds := "the SDK's default credential chain"
	switch {
	case cfg.Credentials != nil:
		creds = "given by the caller"
	case getenv("AWS_ACCESS_KEY_ID") != "" && getenv("AWS_SECRET_ACCESS_KEY") != "":
		// The SDK's chain takes these first, before any file.
		creds = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment"
		if getenv("AWS_SESSION_TOKEN") != "" {
			creds += ", with AWS_SESSION_TOKEN (session credentials)"
		}
	case credFile != "":
		creds = fmt.Sprintf("credentials file %s (from %s), then the SDK's chain", credFile, credWhy)
	}
	if profile, program := credentialProcess(awsCfg.ConfigSources); program != "" {
		creds += fmt.Sprintf("; profile %q gets them by running %s (credential_process; arguments not shown)", profile, program)
	}
	note, warning := sessionExpiry(getenv, time.Now())
	if note != "" {
		c.Notes = append(c.Notes, note)
	}
	if warning != "" {
		c.Warnings = append(c.Warnings, warning)
	}
	c.Description = fmt.Sprintf("KMS client for region %s at %s; per-attempt timeout %v, %d attempts; credentials: %s",
		awsCfg.Region, where, attempt, MaxAttempts, creds)
	c.Warnings = append(c.Warnings, fileWarnings...)
	return c, nil
}

// CredentialsFile picks the shared credentials file, first match wins:
//
//  1. AWS_SHARED_CREDENTIALS_FILE (the SDKs' variable),
//  2. AWS_CREDENTIAL_PROFILES_FILE (read by MariaDB's C++ plugin),
//  3. ~/.aws/credentials of the server's user ($HOME, else the passwd
//     entry), when it exists,
//  4. <datadir>/.aws/credentials, when it exists: where the server
//     user's home is the datadir (RPM packages), or where a DBA followed
//     that advice on a system whose mysql home is /nonexistent (Debian).
//
// It returns "" when none applies; why names the rule that matched.
func CredentialsFile(getenv func(string) string, dataDir string) (path, why string) {
	if p := getenv("AWS_SHARED_CREDENTIALS_FILE"); p != "" {
		return p, "AWS_SHARED_CREDENTIALS_FILE"
	}
	if p := getenv("AWS_CREDENTIAL_PROFILES_FILE"); p != "" {
		return p, "AWS_CREDENTIAL_PROFILES_FILE"
	}
	if home := homeDir(getenv); home != "" {
		if p := filepath.Join(home, ".aws", "credentials"); fileExists(p) {
			return p, "home directory"
		}
	}
	if dataDir != "" {
		p := filepath.Join(dataDir, ".aws", "credentials")
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if fileExists(p) {
			return p, "datadir"
		}
	}
	return "", ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// NewWithAPI wraps an API (a real client or a test double). The whole of
// one call, retries and backoff included, is bounded by
// MaxAttempts*attempt plus backoffSlack, which holds every wait between
// attempts: a call that fails for good has had all its attempts.
func NewWithAPI(api API, attempt time.Duration) *Client {
	return &Client{api: api, callTimeout: MaxAttempts*attempt + backoffSlack}
}

// CallTimeout bounds one call, retries and backoff included.
func (c *Client) CallTimeout() time.Duration { return c.callTimeout }

// GenerateDataKeyWithoutPlaintext asks KMS for a data key wrapped under
// masterKeyID; keySpec is AES_128 or AES_256.
func (c *Client) GenerateDataKeyWithoutPlaintext(ctx context.Context, masterKeyID, keySpec string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	out, err := c.api.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{
		KeyId:   aws.String(masterKeyID),
		KeySpec: types.DataKeySpec(keySpec),
	})
	if err != nil {
		return nil, kmserr.New(opGenerate, err)
	}
	if len(out.CiphertextBlob) == 0 {
		return nil, kmserr.New(opGenerate, errors.New("KMS returned an empty CiphertextBlob"))
	}
	return out.CiphertextBlob, nil
}

const (
	opGenerate = "GenerateDataKeyWithoutPlaintext"
	opDecrypt  = "Decrypt"
)

// Decrypt unwraps a data key into dst and returns its length. Only the
// ciphertext is sent: KMS finds the master key in the blob, so keys
// wrapped by any CMK still open.
func (c *Client) Decrypt(ctx context.Context, blob, dst []byte) (int, error) {
	n, _, err := c.DecryptWithKeyID(ctx, blob, dst)
	return n, err
}

// DecryptWithKeyID is Decrypt that also returns the ARN of the KMS key
// that wrapped blob, as KMS reports it ("" if it reports none).
//
// With a client of New, the key goes from the raw answer straight into
// dst (see plaintext.go): the SDK never holds it. On error dst is wiped.
func (c *Client) DecryptWithKeyID(ctx context.Context, blob, dst []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	sink := &plaintextSink{dst: dst}
	out, err := c.api.Decrypt(withPlaintextSink(ctx, sink), &kms.DecryptInput{CiphertextBlob: blob}, c.decryptOpts...)
	if err != nil {
		clear(dst)
		return 0, "", kmserr.New(opDecrypt, err)
	}
	defer clear(out.Plaintext)
	n := sink.n
	if !sink.filled {
		// A test double: the key came back the SDK's way.
		if len(out.Plaintext) > len(dst) {
			return 0, "", kmserr.New(opDecrypt, fmt.Errorf("KMS returned a key of %d bytes; at most %d fit", len(out.Plaintext), len(dst)))
		}
		n = copy(dst, out.Plaintext)
	}
	return n, aws.ToString(out.KeyId), nil
}
