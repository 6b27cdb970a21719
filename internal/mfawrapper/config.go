package mfawrapper

import (
	"errors"
	"fmt"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/optfile"
)

// Group is the config file's group, as in MariaDB's guide.
const Group = "kms"

// Defaults of the optional settings.
const (
	// DefaultSessionDuration is the guide's 900 s (STS's minimum).
	DefaultSessionDuration = 900 * time.Second
	// DefaultCodeTimeout is how long the wrapper waits for the code.
	DefaultCodeTimeout = 300 * time.Second
	// MinSessionDuration and MaxSessionDuration are STS
	// GetSessionToken's bounds for IAM users.
	MinSessionDuration = 900 * time.Second
	MaxSessionDuration = 129600 * time.Second
)

// Config is the [kms] group of the wrapper's config file.
type Config struct {
	// MFASerial is kms_mfa_id: the MFA device's ARN (or a hardware
	// device's serial number).
	MFASerial string
	// FIFO is kms_mfa_socket: the FIFO the code is written to.
	FIFO string
	// FIFOGroup is kms_mfa_socket_group: if set, members of that group
	// may write the FIFO too (mode 0620); otherwise only its owner, the
	// user the wrapper runs as, and root (mode 0600).
	FIFOGroup string
	// CodeTimeout is kms_mfa_timeout (seconds): how long to wait for the
	// code.
	CodeTimeout time.Duration
	// SessionDuration is kms_session_duration (seconds, 900 to 129600):
	// how long the session credentials last.
	SessionDuration time.Duration
}

// settings are the names the [kms] group may hold.
var settings = []string{"kms_mfa_id", "kms_mfa_socket", "kms_mfa_socket_group", "kms_mfa_timeout", "kms_session_duration"}

// LoadConfig reads and checks the [kms] group of path. Every problem is
// an error naming the file and the setting.
func LoadConfig(path string) (Config, error) {
	var c Config
	if path == "" {
		return c, errors.New("no config file: give --config=FILE (a file with a [kms] group holding kms_mfa_id and kms_mfa_socket)")
	}
	o, err := optfile.Load(path, "", []string{Group}, "/nonexistent")
	if err != nil {
		return c, fmt.Errorf("reading config file %s: %w", path, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("config file %s, [%s]: %s", path, Group, fmt.Sprintf(format, a...))
	}
	for _, n := range o.Names() {
		known := false
		for _, s := range settings {
			known = known || n == s
		}
		if !known {
			return c, bad("unknown setting %q (known: %s)", n, strings.Join(settings, ", "))
		}
	}
	required := func(name string) (string, error) {
		v, ok := o.Get(name)
		switch {
		case !ok:
			return "", bad("%s is missing", name)
		case strings.TrimSpace(v) == "":
			return "", bad("%s has no value", name)
		}
		return strings.TrimSpace(v), nil
	}
	if c.MFASerial, err = required("kms_mfa_id"); err != nil {
		return c, err
	}
	if len(c.MFASerial) < 9 || len(c.MFASerial) > 256 || strings.ContainsAny(c.MFASerial, " \t") {
		return c, bad("kms_mfa_id %q is not an MFA device ARN (arn:aws:iam::ACCOUNT:mfa/NAME) or serial number", c.MFASerial)
	}
	if c.FIFO, err = required("kms_mfa_socket"); err != nil {
		return c, err
	}
	if !filepath.IsAbs(c.FIFO) {
		return c, bad("kms_mfa_socket %q must be an absolute path", c.FIFO)
	}
	c.FIFO = filepath.Clean(c.FIFO)
	if v, ok := o.Get("kms_mfa_socket_group"); ok {
		if c.FIFOGroup = strings.TrimSpace(v); c.FIFOGroup == "" {
			return c, bad("kms_mfa_socket_group has no value")
		}
		if _, err := user.LookupGroup(c.FIFOGroup); err != nil {
			return c, bad("kms_mfa_socket_group %q: %v", c.FIFOGroup, err)
		}
	}
	seconds := func(name string, def, lo, hi time.Duration) (time.Duration, error) {
		v, ok := o.Get(name)
		if !ok {
			return def, nil
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		d := time.Duration(n) * time.Second
		if err != nil || d < lo || d > hi {
			return 0, bad("%s = %q: want whole seconds from %d to %d", name, v, int(lo.Seconds()), int(hi.Seconds()))
		}
		return d, nil
	}
	if c.CodeTimeout, err = seconds("kms_mfa_timeout", DefaultCodeTimeout, time.Second, 24*time.Hour); err != nil {
		return c, err
	}
	if c.SessionDuration, err = seconds("kms_session_duration", DefaultSessionDuration, MinSessionDuration, MaxSessionDuration); err != nil {
		return c, err
	}
	return c, nil
}
