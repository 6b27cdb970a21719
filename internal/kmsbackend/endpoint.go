package kmsbackend

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/mariadb-go/aws_key_management/internal/logtext"
)

// EndpointVariable is the system variable that overrides the endpoint.
const EndpointVariable = "aws_key_management_endpoint_url"

// sdkEndpointSource names where the SDK finds an endpoint of its own.
const sdkEndpointSource = "AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL or endpoint_url in the AWS config file"

// NormalizeEndpoint accepts an endpoint with or without a scheme, as the
// C++ SDK does: without one, https is used.
func NormalizeEndpoint(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.Contains(s, "://") {
		return s
	}
	return "https://" + s
}

// RedactEndpoint returns an endpoint URL fit for the error log: a
// user:password@ part is replaced by "xxxxx@", and control characters
// are escaped. It works on text that does not parse as a URL too.
func RedactEndpoint(s string) string {
	if start, end := userInfo(s); end > start {
		s = s[:start] + "xxxxx" + s[end:]
	}
	return logtext.OneLine(s, 512)
}

// userInfo locates the user:password part of an endpoint URL, text that
// need not parse: s[start:end] is what precedes the last '@' of the
// authority (start == end if there is none).
func userInfo(s string) (start, end int) {
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + 3
	}
	auth := s[start:]
	if i := strings.IndexAny(auth, "/?#"); i >= 0 {
		auth = auth[:i]
	}
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		return start, start + at
	}
	return start, start
}

// endpoint is an endpoint override that passed checkEndpoint.
type endpoint struct {
	url    string // for the SDK: normalized, without user info
	shown  string // for logs and errors: redacted
	source string // the variable or setting it came from
	plain  bool   // http://
}

// checkEndpoint accepts https:// endpoints, and http:// ones only on a
// loopback address: over anything else, plaintext keys would cross the
// network in clear. A user:password@ part is dropped (KMS requests are
// signed; net/http sends no Basic credentials next to a signature) and
// never shown.
func checkEndpoint(raw, source string) (endpoint, error) {
	s := NormalizeEndpoint(raw)
	shown := RedactEndpoint(s)
	refuse := func(why string) error {
		// shown is already on one line, its control characters escaped.
		return fmt.Errorf("%s = \"%s\": %s", source, shown, why)
	}
	u, err := url.Parse(s)
	if err != nil {
		why := "not a URL"
		// url.Error quotes the whole URL; its inner error names the
		// part that is wrong, which may be part of a password: shown
		// only when there is no user info.
		var ue *url.Error
		if start, end := userInfo(s); end == start && errors.As(err, &ue) {
			why += " (" + logtext.OneLine(ue.Err.Error(), 200) + ")"
		}
		return endpoint{}, refuse(why + "; give https://host[:port]")
	}
	switch u.Scheme {
	case "https", "http":
	default:
		return endpoint{}, refuse(fmt.Sprintf("scheme %q is not supported; give https://host[:port]", logtext.OneLine(u.Scheme, 32)))
	}
	if u.Host == "" || u.Hostname() == "" {
		return endpoint{}, refuse("no host; give https://host[:port]")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		https := *u
		https.Scheme, https.User = "https", nil
		return endpoint{}, refuse(fmt.Sprintf("http:// is allowed only to a loopback address (127.0.0.0/8, ::1, localhost): "+
			"keys would cross the network unencrypted; use %s", RedactEndpoint(https.String())))
	}
	u.User = nil
	return endpoint{url: u.String(), shown: shown, source: source, plain: u.Scheme == "http"}, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// warning is the line the plugin logs at start for an endpoint override.
func (e endpoint) warning() string {
	w := fmt.Sprintf("using endpoint %s instead of the region's default (%s): whoever answers there can hand out keys", e.shown, e.source)
	if e.plain {
		w += "; with http:// keys cross the connection unencrypted"
	}
	return w
}
