package kmstest

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	amzDate      = "20060102T150405Z"
	maxSkew      = 15 * time.Minute

	msgBadToken     = "The security token included in the request is invalid."
	msgBadSignature = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	msgExpiredToken = "The security token included in the request is expired"
)

// caller is who signed a request: the static credentials, or a session
// that GetSessionToken handed out (with or without MFA).
type caller struct {
	akid    string
	session *session // nil for the static credentials
}

// mfa reports whether the caller's credentials came from a
// GetSessionToken call that passed an MFA code.
func (c caller) mfa() bool { return c.session != nil && c.session.mfa }

// verify checks the request's SigV4 Authorization header the way AWS
// does: credential scope (service is "kms" or "sts"), clock skew, session
// token and its expiry, then the signature recomputed over exactly the
// headers the client says it signed. The access key id may be the static
// one or a session's. Errors use KMS's exception names; the STS side
// renames them (stsCode).
func (s *Server) verify(r *http.Request, body []byte, service string) (caller, *apiError) {
	s.mu.Lock()
	creds, region := s.creds, s.region
	s.mu.Unlock()
	none := caller{}

	authz := r.Header.Get("Authorization")
	if authz == "" {
		return none, newError("MissingAuthenticationTokenException", "Missing Authentication Token")
	}
	alg, rest, _ := strings.Cut(strings.TrimSpace(authz), " ")
	if alg != sigAlgorithm {
		return none, newError("IncompleteSignatureException", "Unsupported AWS 'algorithm': '%s'", alg)
	}
	params := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok {
			params[k] = v
		}
	}
	var missing []string
	for _, k := range []string{"Credential", "Signature", "SignedHeaders"} {
		if params[k] == "" {
			missing = append(missing, "Authorization header requires '"+k+"' parameter.")
		}
	}
	if len(missing) > 0 {
		return none, newError("IncompleteSignatureException", "%s", strings.Join(missing, " "))
	}
	scope := strings.Split(params["Credential"], "/")
	if len(scope) != 5 {
		return none, newError("IncompleteSignatureException", "Credential should have exactly 5 slash-separated components: <access key id>/<date>/<region>/<service>/aws4_request.")
	}
	akid, scopeDate, scopeRegion, scopeService, terminator := scope[0], scope[1], scope[2], scope[3], scope[4]

	signed := strings.Split(params["SignedHeaders"], ";")
	for i := range signed {
		signed[i] = strings.ToLower(strings.TrimSpace(signed[i]))
	}
	sort.Strings(signed)
	hasHost := false
	for _, h := range signed {
		hasHost = hasHost || h == "host"
	}
	if !hasHost {
		return none, newError("IncompleteSignatureException", "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}

	var when time.Time
	if v := r.Header.Get("X-Amz-Date"); v != "" {
		t, err := time.Parse(amzDate, v)
		if err != nil {
			return none, newError("IncompleteSignatureException", "X-Amz-Date must be in ISO-8601 basic format (yyyyMMdd'T'HHmmss'Z'), got '%s'.", v)
		}
		when = t
	} else if v := r.Header.Get("Date"); v != "" {
		t, err := http.ParseTime(v)
		if err != nil {
			return none, newError("IncompleteSignatureException", "Date must be an HTTP date, got '%s'.", v)
		}
		when = t.UTC()
	} else {
		return none, newError("IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}

	who := caller{akid: akid}
	if subtle.ConstantTimeCompare([]byte(akid), []byte(creds.akid)) != 1 {
		sess := s.sessionFor(akid)
		if sess == nil {
			return none, newError("UnrecognizedClientException", msgBadToken)
		}
		who.session = sess
		creds = credSet{akid, sess.secret, sess.token}
	}
	if scopeDate != when.Format("20060102") {
		return none, newError("InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			scopeDate, when.Format("20060102"), when.Format(amzDate))
	}
	if scopeRegion != region {
		return none, newError("InvalidSignatureException", "Credential should be scoped to a valid region, not '%s'. ", scopeRegion)
	}
	if scopeService != service {
		return none, newError("InvalidSignatureException", "Credential should be scoped to correct service: '%s'. ", service)
	}
	if terminator != "aws4_request" {
		return none, newError("InvalidSignatureException", "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'. ", terminator)
	}
	now := s.now().UTC()
	if when.Before(now.Add(-maxSkew)) {
		return none, newError("InvalidSignatureException", "Signature expired: %s is now earlier than %s (%s - 15 min.)",
			when.Format(amzDate), now.Add(-maxSkew).Format(amzDate), now.Format(amzDate))
	}
	if when.After(now.Add(maxSkew)) {
		return none, newError("InvalidSignatureException", "Signature not yet current: %s is still later than %s (%s + 15 min.)",
			when.Format(amzDate), now.Add(maxSkew).Format(amzDate), now.Format(amzDate))
	}
	token := r.Header.Get("X-Amz-Security-Token")
	if subtle.ConstantTimeCompare([]byte(token), []byte(creds.token)) != 1 {
		return none, newError("UnrecognizedClientException", msgBadToken)
	}
	if who.session != nil && !now.Before(who.session.expires) {
		return none, newError("ExpiredTokenException", msgExpiredToken)
	}

	bodySum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(bodySum[:])
	if v := r.Header.Get("X-Amz-Content-Sha256"); v != "" && v != "UNSIGNED-PAYLOAD" {
		if !strings.EqualFold(v, payloadHash) {
			return none, newError("InvalidSignatureException", msgBadSignature)
		}
		payloadHash = v
	}

	var canon strings.Builder
	canon.WriteString(r.Method + "\n")
	canon.WriteString(canonicalURI(r.URL) + "\n")
	canon.WriteString(canonicalQuery(r.URL.RawQuery) + "\n")
	for _, h := range signed {
		canon.WriteString(h + ":" + headerValue(r, h) + "\n")
	}
	canon.WriteString("\n" + strings.Join(signed, ";") + "\n" + payloadHash)
	canonSum := sha256.Sum256([]byte(canon.String()))

	credScope := strings.Join(scope[1:], "/")
	toSign := sigAlgorithm + "\n" + when.Format(amzDate) + "\n" + credScope + "\n" + hex.EncodeToString(canonSum[:])
	key := hmacSHA256([]byte("AWS4"+creds.secret), scopeDate)
	key = hmacSHA256(key, scopeRegion)
	key = hmacSHA256(key, scopeService)
	key = hmacSHA256(key, terminator)
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(params["Signature"])), []byte(want)) != 1 {
		return none, newError("InvalidSignatureException", msgBadSignature)
	}
	return who, nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// headerValue is a signed header's canonical value: all its values,
// trimmed, inner runs of spaces collapsed, joined by commas. Go keeps
// Host, and for chunked bodies Transfer-Encoding, outside r.Header.
func headerValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host":
		vals = []string{r.Host}
	case "content-length":
		vals = r.Header.Values("Content-Length")
		if len(vals) == 0 && r.ContentLength >= 0 {
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	case "transfer-encoding":
		vals = r.TransferEncoding
	default:
		vals = r.Header.Values(name)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strings.Join(strings.FieldsFunc(v, func(c rune) bool { return c == ' ' }), " ")
		out[i] = strings.TrimSpace(out[i])
	}
	return strings.Join(out, ",")
}

// canonicalURI is the path, URI-encoded once more, as SigV4 wants for
// every service but S3.
func canonicalURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	return awsEscape(p, false)
}

// canonicalQuery sorts the query parameters by name, then value, each
// URI-encoded the AWS way.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	var pairs [][2]string
	for _, kv := range strings.Split(raw, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		pairs = append(pairs, [2]string{awsEscape(k, true), awsEscape(v, true)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i][0] != pairs[j][0] {
			return pairs[i][0] < pairs[j][0]
		}
		return pairs[i][1] < pairs[j][1]
	})
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p[0] + "=" + p[1]
	}
	return strings.Join(out, "&")
}

// awsEscape percent-encodes everything but the unreserved characters
// (and '/' unless encodeSlash), with upper-case hex.
func awsEscape(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encodeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}
