package kmstest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// STS GetSessionToken, as AWS answers it: the Query protocol (a
// form-encoded POST with Action and Version), SigV4 with service "sts",
// an XML answer. Its temporary credentials (an ASIA... key id, a secret
// and a session token) are accepted on the KMS side until they expire;
// with MFA (SerialNumber and TokenCode of a configured device) they count
// as MFA-authenticated for the key policy switch (SetRequireMFA).

const (
	stsVersion   = "2011-06-15"
	stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

	// DurationSeconds bounds of GetSessionToken, and its default.
	MinSessionDuration     = 900
	MaxSessionDuration     = 129600
	DefaultSessionDuration = 43200

	msgBadMFACode   = "MultiFactorAuthentication failed with invalid MFA one time pass code. "
	msgBadMFASerial = "MultiFactorAuthentication failed, unable to validate MFA code. Please verify your MFA serial number is valid and associated with this user."
	msgSessionCall  = "Cannot call GetSessionToken with session credentials"
)

// session is one set of temporary credentials. The Server keeps them by
// access key id; sessionFor hands out copies.
type session struct {
	secret, token string
	expires       time.Time
	mfa           bool
}

// isSTS tells an STS request from a KMS one: STS has no X-Amz-Target and
// a form-encoded body.
func isSTS(r *http.Request) bool {
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return r.Header.Get("X-Amz-Target") == "" && strings.TrimSpace(strings.ToLower(ct)) == "application/x-www-form-urlencoded"
}

// SetMFADevice adds (or changes) a virtual MFA device: GetSessionToken
// with SerialNumber serial accepts exactly code (six digits).
func (s *Server) SetMFADevice(serial, code string) error {
	if !validTokenCode(code) {
		return fmt.Errorf("MFA code %q: want six digits", code)
	}
	if len(serial) < 9 || len(serial) > 256 {
		return fmt.Errorf("MFA serial %q: want 9 to 256 characters, e.g. arn:aws:iam::111122223333:mfa/name", serial)
	}
	s.mu.Lock()
	s.mfaDevices[serial] = code
	s.mu.Unlock()
	return nil
}

// SetRequireMFA is the key policy condition aws:MultiFactorAuthPresent
// on every key: when on, the cryptographic operations (Encrypt, Decrypt,
// ReEncrypt, GenerateDataKey*) need credentials from GetSessionToken with
// MFA; others get AccessDeniedException.
func (s *Server) SetRequireMFA(on bool) {
	s.mu.Lock()
	s.requireMFA = on
	s.mu.Unlock()
}

// ExpireSessions makes every session handed out so far expire now (a
// test's way to skip the 900 s minimum), and returns how many there were.
func (s *Server) ExpireSessions() int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		if ss.expires.After(now) {
			ss.expires = now
		}
	}
	return len(s.sessions)
}

func (s *Server) sessionFor(akid string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[akid]
	if !ok {
		return nil
	}
	c := *ss
	return &c
}

// mfaOps are the operations the MFA key policy covers.
var mfaOps = map[string]bool{
	"Encrypt": true, "Decrypt": true, "ReEncrypt": true,
	"GenerateDataKey": true, "GenerateDataKeyWithoutPlaintext": true,
}

// policyDenies is the key policy's answer for who calling op.
func (s *Server) policyDenies(who caller, op string) *apiError {
	s.mu.Lock()
	need := s.requireMFA && mfaOps[op]
	account := s.account
	s.mu.Unlock()
	if !need || who.mfa() {
		return nil
	}
	principal := "arn:aws:iam::" + account + ":user/emulator"
	if who.session != nil {
		principal = "arn:aws:sts::" + account + ":session/" + who.akid
	}
	return newError("AccessDeniedException", "User: %s is not authorized to perform: kms:%s on this resource because the resource-based policy requires MultiFactorAuthPresent (no MFA in the request's credentials)", principal, op)
}

// serveSTS answers one STS request and returns the log fields.
func (s *Server) serveSTS(w http.ResponseWriter, r *http.Request, info *reqInfo) (int, string) {
	out, aerr := s.handleSTS(r, info)
	if aerr != nil {
		code := stsCode(aerr.code)
		if aerr.status == 0 {
			return 0, code // client went away
		}
		status := stsStatus(code)
		if aerr.status >= 500 {
			status = aerr.status
		}
		kind := "Sender"
		if status >= 500 {
			kind = "Receiver"
		}
		writeXML(w, status, stsError{Type: kind, Code: code, Message: aerr.message, RequestID: newUUID()})
		return status, code
	}
	writeXML(w, http.StatusOK, out)
	return http.StatusOK, ""
}

func (s *Server) handleSTS(r *http.Request, info *reqInfo) (any, *apiError) {
	if r.Method != http.MethodPost {
		return nil, newError("InvalidAction", "STS takes POST here")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return nil, &apiError{code: "RequestCanceled", message: err.Error()}
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, newError("MalformedInput", "the body is not form-encoded: %v", err)
	}
	info.op = form.Get("Action")
	s.mu.Lock()
	if info.op != "" {
		s.calls[info.op]++
	}
	s.mu.Unlock()
	who, aerr := s.verify(r, body, "sts")
	if aerr != nil {
		return nil, aerr
	}
	if info.op != "GetSessionToken" {
		return nil, newError("InvalidAction", "Could not find operation %s for version %s", info.op, form.Get("Version"))
	}
	if v := form.Get("Version"); v != stsVersion {
		return nil, newError("InvalidAction", "Could not find operation %s for version %s", info.op, v)
	}
	s.mu.Lock()
	fail := s.faults.Take(info.op)
	s.mu.Unlock()
	if fail != nil {
		return nil, newError("ServiceUnavailable", "%v", fail)
	}
	return s.getSessionToken(who, form)
}

func (s *Server) getSessionToken(who caller, form url.Values) (any, *apiError) {
	duration := DefaultSessionDuration
	if v := form.Get("DurationSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, newError("ValidationError", "1 validation error detected: Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must be an integer", v)
		}
		switch {
		case n < MinSessionDuration:
			return nil, newError("ValidationError", "1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to %d", n, MinSessionDuration)
		case n > MaxSessionDuration:
			return nil, newError("ValidationError", "1 validation error detected: Value '%d' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to %d", n, MaxSessionDuration)
		}
		duration = n
	}
	serial, code := form.Get("SerialNumber"), form.Get("TokenCode")
	if code != "" && !validTokenCode(code) {
		return nil, newError("ValidationError", "1 validation error detected: Value '%s' at 'tokenCode' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\d]* and have length 6", code)
	}
	if who.session != nil {
		return nil, newError("AccessDenied", msgSessionCall)
	}
	mfa := false
	if serial != "" || code != "" {
		s.mu.Lock()
		want, known := s.mfaDevices[serial]
		s.mu.Unlock()
		switch {
		case !known:
			return nil, newError("AccessDenied", msgBadMFASerial)
		case code != want:
			return nil, newError("AccessDenied", msgBadMFACode)
		}
		mfa = true
	}
	ss := &session{secret: randomString(30), token: randomString(180), mfa: mfa}
	akid := "ASIA" + strings.ToUpper(randomAlnum(16))
	now := s.now()
	ss.expires = now.Add(time.Duration(duration) * time.Second)
	s.mu.Lock()
	s.sessions[akid] = ss
	s.mu.Unlock()
	var out getSessionTokenResponse
	out.Result.Credentials = stsCredentials{
		AccessKeyID:     akid,
		SecretAccessKey: ss.secret,
		SessionToken:    ss.token,
		Expiration:      ss.expires.UTC().Format("2006-01-02T15:04:05.000Z"),
	}
	out.Metadata.RequestID = newUUID()
	return out, nil
}

func validTokenCode(c string) bool {
	if len(c) != 6 {
		return false
	}
	for _, d := range []byte(c) {
		if d < '0' || d > '9' {
			return false
		}
	}
	return true
}

// stsCode renames KMS's authentication exceptions to STS's error codes.
func stsCode(kmsCode string) string {
	switch kmsCode {
	case "UnrecognizedClientException":
		return "InvalidClientTokenId"
	case "InvalidSignatureException":
		return "SignatureDoesNotMatch"
	case "ExpiredTokenException":
		return "ExpiredToken"
	case "MissingAuthenticationTokenException":
		return "MissingAuthenticationToken"
	case "IncompleteSignatureException":
		return "IncompleteSignature"
	}
	return kmsCode
}

func stsStatus(code string) int {
	switch code {
	case "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "MissingAuthenticationToken", "AccessDenied":
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type getSessionTokenResponse struct {
	XMLName xml.Name `xml:"GetSessionTokenResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		Credentials stsCredentials `xml:"Credentials"`
	} `xml:"GetSessionTokenResult"`
	Metadata struct {
		RequestID string `xml:"RequestId"`
	} `xml:"ResponseMetadata"`
}

type stsError struct {
	Type, Code, Message, RequestID string
}

func writeXML(w http.ResponseWriter, status int, v any) {
	var b []byte
	switch v := v.(type) {
	case getSessionTokenResponse:
		v.Xmlns = stsNamespace
		b, _ = xml.MarshalIndent(v, "", "  ")
	case stsError:
		type errBody struct {
			Type    string `xml:"Type"`
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}
		var e struct {
			XMLName   xml.Name `xml:"ErrorResponse"`
			Xmlns     string   `xml:"xmlns,attr"`
			Error     errBody  `xml:"Error"`
			RequestID string   `xml:"RequestId"`
		}
		e.Xmlns, e.Error, e.RequestID = stsNamespace, errBody{v.Type, v.Code, v.Message}, v.RequestID
		b, _ = xml.MarshalIndent(e, "", "  ")
	}
	h := w.Header()
	h.Set("Content-Type", "text/xml")
	h.Set("X-Amzn-Requestid", newUUID())
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("kmstest: random: " + err.Error())
	}
	return base64.StdEncoding.EncodeToString(b)
}

func randomAlnum(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("kmstest: random: " + err.Error())
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
