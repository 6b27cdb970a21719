package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// enable-key and disable-key: the key's state changes in KMS, is shown
// after, and with --mfa-serial the calls go through an MFA session.
func TestEnableDisableKey(t *testing.T) {
	w := newWorld(t)
	const serial, code = "arn:aws:iam::111122223333:mfa/keyadmin", "246810"
	if err := w.srv.SetMFADevice(serial, code); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		info, err := w.client.DescribeKey(context.Background(), idA)
		if err != nil {
			t.Fatal(err)
		}
		return info.State
	}
	r := w.run("disable-key", "--key-id", arnA)
	if r.code != 0 || r.stdout != arnA+": Disabled\n" || withoutEndpointWarning(r.stderr) != "" || state() != "Disabled" {
		t.Fatalf("disable-key: exit %d, stdout %q, stderr %q, state %s", r.code, r.stdout, r.stderr, state())
	}
	// An alias is resolved first (EnableKey takes none); --json.
	r = w.run("enable-key", "--key-id", "alias/old", "--json")
	var res map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || res["state"] != "Enabled" || res["arn"] != arnA ||
		res["action"] != "enable" || res["key_id"] != "alias/old" || state() != "Enabled" {
		t.Fatalf("enable-key alias: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// With MFA: one GetSessionToken, then the KMS calls.
	sts := []string{"AWS_ENDPOINT_URL_STS=" + w.url}
	w.srv.ResetCalls()
	r = w.runEnv(sts, "--no-defaults", "--endpoint-url", w.url, "disable-key", "--key-id", arnA, "--mfa-serial", serial, "--mfa-code", code)
	calls := w.srv.Calls()
	if r.code != 0 || !strings.HasPrefix(r.stdout, arnA+": Disabled\nMFA session credentials used; they expire at ") ||
		calls["GetSessionToken"] != 1 || calls["DisableKey"] != 1 || state() != "Disabled" {
		t.Fatalf("disable-key with MFA: exit %d, stdout %q, stderr %q, calls %v", r.code, r.stdout, r.stderr, calls)
	}
	// A wrong code: STS refuses, exit 1, the key is not touched.
	r = w.runEnv(sts, "--no-defaults", "--endpoint-url", w.url, "enable-key", "--key-id", arnA, "--mfa-serial", serial, "--mfa-code", "135790")
	if r.code != 1 || !strings.Contains(r.stderr, "MultiFactorAuthentication failed with invalid MFA one time pass code") ||
		!strings.Contains(r.stderr, "the code was refused") || r.stdout != "" || state() != "Disabled" {
		t.Fatalf("wrong code: exit %d, stdout %q, stderr %q, state %s", r.code, r.stdout, r.stderr, state())
	}
	r = w.runEnv(sts, "--no-defaults", "--endpoint-url", w.url, "enable-key", "--key-id", arnA, "--mfa-serial", serial, "--mfa-code", code)
	if r.code != 0 || state() != "Enabled" {
		t.Fatalf("enable-key with MFA: exit %d, stderr %q", r.code, r.stderr)
	}

	// Usage errors: exit 2, nothing called.
	w.srv.ResetCalls()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"enable-key"}, "no KMS key: give --key-id"},
		{[]string{"enable-key", "--key-id", idA, "--mfa-serial", serial}, "--mfa-serial and --mfa-code go together"},
		{[]string{"enable-key", "--key-id", idA, "--mfa-serial", serial, "--mfa-code", "12345"}, "--mfa-code: want the six digits"},
	} {
		r := w.runEnv(sts, append([]string{"--no-defaults", "--endpoint-url", w.url}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q", tc.args, r.code, r.stderr)
		}
	}
	if n := len(w.srv.Calls()); n != 0 {
		t.Errorf("usage errors called KMS or STS: %v", w.srv.Calls())
	}
	// An unknown key: KMS's NotFoundException, exit 1.
	r = w.run("disable-key", "--key-id", "arn:aws:kms:"+region+":111122223333:key/0a0a0a0a-0000-4000-8000-0000000000ff")
	if r.code != 1 || !strings.Contains(r.stderr, "NotFoundException") {
		t.Errorf("unknown key: exit %d, stderr %q", r.code, r.stderr)
	}
}
