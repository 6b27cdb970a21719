package kmsbackend_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
)

const (
	warnPrefix = "using endpoint "
	warnMiddle = " instead of the region's default (aws_key_management_endpoint_url): whoever answers there can hand out keys"
	warnHTTP   = "; with http:// keys cross the connection unencrypted"
)

// New accepts https:// endpoints and http:// ones on loopback only, and
// says at start that an endpoint override is in use.
func TestNewEndpoint(t *testing.T) {
	tests := []struct {
		value string
		shown string // in Description and the warning; "" if refused
		err   string // the whole error
	}{
		{"", "", ""},
		{"http://127.0.0.1:4566", "http://127.0.0.1:4566", ""},
		{" http://127.0.0.1:4566/ \n", "http://127.0.0.1:4566/", ""},
		{"http://127.9.8.7", "http://127.9.8.7", ""},
		{"http://localhost:4566", "http://localhost:4566", ""},
		{"HTTP://LocalHost:4566", "HTTP://LocalHost:4566", ""},
		{"http://[::1]:4566", "http://[::1]:4566", ""},
		{"https://kms.eu-west-1.amazonaws.com", "https://kms.eu-west-1.amazonaws.com", ""},
		{"vpce-0123.kms.eu-west-1.vpce.amazonaws.com:443", "https://vpce-0123.kms.eu-west-1.vpce.amazonaws.com:443", ""},
		{"https://user:secret@kms.example.com", "https://xxxxx@kms.example.com", ""},
		{"http://kms.example.com", "", `aws_key_management_endpoint_url = "http://kms.example.com": http:// is allowed only to a loopback address (127.0.0.0/8, ::1, localhost): keys would cross the network unencrypted; use https://kms.example.com`},
		{"http://10.0.0.5:4566/kms", "", `aws_key_management_endpoint_url = "http://10.0.0.5:4566/kms": http:// is allowed only to a loopback address (127.0.0.0/8, ::1, localhost): keys would cross the network unencrypted; use https://10.0.0.5:4566/kms`},
		{"http://localhost.example.com", "", `aws_key_management_endpoint_url = "http://localhost.example.com": http:// is allowed only to a loopback address (127.0.0.0/8, ::1, localhost): keys would cross the network unencrypted; use https://localhost.example.com`},
		{"http://user:secret@kms.example.com:8080", "", `aws_key_management_endpoint_url = "http://xxxxx@kms.example.com:8080": http:// is allowed only to a loopback address (127.0.0.0/8, ::1, localhost): keys would cross the network unencrypted; use https://kms.example.com:8080`},
		{"ftp://kms.example.com", "", `aws_key_management_endpoint_url = "ftp://kms.example.com": scheme "ftp" is not supported; give https://host[:port]`},
		{"http://", "", `aws_key_management_endpoint_url = "http://": no host; give https://host[:port]`},
		{"https://:443", "", `aws_key_management_endpoint_url = "https://:443": no host; give https://host[:port]`},
		{"https://kms.example.com:port", "", `aws_key_management_endpoint_url = "https://kms.example.com:port": not a URL (invalid port ":port" after host); give https://host[:port]`},
		{"https://user:p%zz@kms.example.com", "", `aws_key_management_endpoint_url = "https://xxxxx@kms.example.com": not a URL; give https://host[:port]`},
		{"https://kms.example.com\x1b[2J", "", `aws_key_management_endpoint_url = "https://kms.example.com\x1b[2J": not a URL (net/url: invalid control character in URL); give https://host[:port]`},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			awsEnv(t)
			c, err := kmsbackend.New(context.Background(), kmsbackend.Config{EndpointURL: tc.value})
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("New: %v\nwant error %s", err, tc.err)
				}
				if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "user") {
					t.Errorf("the error shows the user info")
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if tc.shown == "" {
				if len(c.Warnings) != 0 || !strings.Contains(c.Description, "the region's default endpoint") {
					t.Errorf("default endpoint: warnings %q, description %q", c.Warnings, c.Description)
				}
				return
			}
			want := warnPrefix + tc.shown + warnMiddle
			if strings.HasPrefix(strings.ToLower(tc.shown), "http://") {
				want += warnHTTP
			}
			if len(c.Warnings) != 1 || c.Warnings[0] != want {
				t.Errorf("Warnings = %q\nwant       [%q]", c.Warnings, want)
			}
			if !strings.Contains(c.Description, " at "+tc.shown+";") {
				t.Errorf("Description %q does not name %s", c.Description, tc.shown)
			}
			// (Description's credentials file is in a directory named
			// after the test.)
			where, _, _ := strings.Cut(c.Description, "; per-attempt")
			for _, s := range append(c.Warnings, where) {
				if strings.Contains(s, "secret") || strings.Contains(s, "user") {
					t.Errorf("%q shows the user info", s)
				}
			}
		})
	}
}

// The user info of a loopback endpoint is dropped, not sent and never
// shown: not in Description, the warning, or any request log line,
// failed calls included.
func TestNewEndpointUserInfo(t *testing.T) {
	awsEnv(t)
	var basic []string
	srv := newKMSServer(t, func(n int, r request, w http.ResponseWriter) {
		if _, _, ok := (&http.Request{Header: http.Header{"Authorization": {r.auth}}}).BasicAuth(); ok {
			basic = append(basic, r.auth)
		}
		if n == 1 {
			writeJSON(w, 400, map[string]string{"__type": "DisabledException", "message": "disabled"})
			return
		}
		writeJSON(w, 200, map[string]string{"Plaintext": base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))})
	})
	var log logLines
	endpoint := strings.Replace(srv.URL, "http://", "http://dba:hunter2@", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := kmsbackend.New(ctx, kmsbackend.Config{EndpointURL: endpoint, RequestTimeout: 5 * time.Second, Log: log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decrypt(c, callCtx(t), []byte("blob")); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("first call: %v", err)
	}
	if _, err := decrypt(c, callCtx(t), []byte("blob")); err != nil {
		t.Errorf("second call: %v", err)
	}
	lines := log.all()
	for _, s := range append(c.Warnings, c.Description, lines) {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "dba") {
			t.Errorf("user info shown in %q", s)
		}
	}
	if !strings.Contains(lines, "KMS Decrypt attempt 1 to "+strings.TrimPrefix(srv.URL, "http://")+": DisabledException") {
		t.Errorf("log lacks the failed attempt:\n%s", lines)
	}
	if want := "http://xxxxx@" + strings.TrimPrefix(srv.URL, "http://"); !strings.Contains(c.Description, want) || !strings.Contains(c.Warnings[0], want) {
		t.Errorf("Description %q, Warnings %q: want %s", c.Description, c.Warnings, want)
	}
	if len(basic) != 0 || srv.n.Load() != 2 {
		t.Errorf("%d requests, Basic credentials sent: %q", srv.n.Load(), basic)
	}
}

// An endpoint the SDK finds itself (AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL
// or endpoint_url in the config file) is checked and warned about the
// same way.
func TestNewEndpointFromEnvironment(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		awsEnv(t)
		t.Setenv("AWS_ENDPOINT_URL_KMS", "http://kms.example.com")
		_, err := kmsbackend.New(context.Background(), kmsbackend.Config{})
		want := `AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL or endpoint_url in the AWS config file = "http://kms.example.com": http:// is allowed only to a loopback address`
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("New: %v\nwant %s...", err, want)
		}
	})
	t.Run("used and warned about", func(t *testing.T) {
		awsEnv(t)
		srv := newKMSServer(t, func(_ int, _ request, w http.ResponseWriter) {
			writeJSON(w, 200, map[string]string{"CiphertextBlob": "AAAA"})
		})
		t.Setenv("AWS_ENDPOINT_URL", srv.URL)
		c, err := kmsbackend.New(context.Background(), kmsbackend.Config{})
		if err != nil {
			t.Fatal(err)
		}
		want := "using endpoint " + srv.URL + " instead of the region's default (AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL or endpoint_url in the AWS config file)"
		if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], want) {
			t.Errorf("Warnings = %q, want %s...", c.Warnings, want)
		}
		if _, err := c.GenerateDataKeyWithoutPlaintext(callCtx(t), "alias/k", "AES_128"); err != nil || srv.n.Load() != 1 {
			t.Errorf("Generate: %v, %d requests", err, srv.n.Load())
		}
	})
	t.Run("the variable wins", func(t *testing.T) {
		awsEnv(t)
		t.Setenv("AWS_ENDPOINT_URL_KMS", "http://kms.example.com")
		c, err := kmsbackend.New(context.Background(), kmsbackend.Config{EndpointURL: "https://kms.eu-west-1.amazonaws.com"})
		if err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "(aws_key_management_endpoint_url)") {
			t.Fatalf("New: %v, warnings %q", err, c.Warnings)
		}
	})
}

func TestRedactEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"https://kms.example.com":              "https://kms.example.com",
		"https://u:p@kms.example.com/a@b?c=@d": "https://xxxxx@kms.example.com/a@b?c=@d",
		"https://u@kms.example.com":            "https://xxxxx@kms.example.com",
		"u:p@kms.example.com:443":              "xxxxx@kms.example.com:443",
		"https://a@b@kms.example.com":          "https://xxxxx@kms.example.com",
		"kms.example.com:443":                  "kms.example.com:443",
		"https://k\nms":                        `https://k\nms`,
	} {
		if got := kmsbackend.RedactEndpoint(in); got != want {
			t.Errorf("RedactEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}
