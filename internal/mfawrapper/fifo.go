package mfawrapper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"time"
)

// FIFO is the named pipe the MFA code is written to. Remove it on every
// path out (Close does).
type FIFO struct {
	Path string
	Mode os.FileMode
}

// ErrCodeTimeout is returned when no code arrived in time.
var ErrCodeTimeout = errors.New("no MFA code arrived in time")

// maxCodeInput bounds what is read from the FIFO.
const maxCodeInput = 64

// CreateFIFO makes the FIFO at path, mode 0600 (0620 with group set,
// owned by that group). An existing FIFO (left by a run that was killed)
// is replaced; any other file there is refused.
func CreateFIFO(path, group string) (*FIFO, error) {
	mode := os.FileMode(0o600)
	gid := -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("MFA FIFO group %q: %w", group, err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return nil, fmt.Errorf("MFA FIFO group %q: gid %q: %w", group, g.Gid, err)
		}
		mode = 0o620
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != os.ModeNamedPipe {
			return nil, fmt.Errorf("MFA FIFO %s: a %s is already there; the wrapper only replaces a FIFO of its own: remove it or set another kms_mfa_socket", path, kind(st.Mode()))
		}
		// A FIFO left behind; in a sticky directory such as /tmp only
		// its owner (or root) can remove it.
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("MFA FIFO %s: removing the FIFO left there: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("MFA FIFO %s: %w", path, err)
	}
	old := syscall.Umask(0o077)
	err := syscall.Mkfifo(path, 0o600)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("creating MFA FIFO %s: %w", path, err)
	}
	f := &FIFO{Path: path, Mode: mode}
	if gid >= 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			f.Close()
			return nil, fmt.Errorf("MFA FIFO %s: giving it to group %s: %w", path, group, err)
		}
		if err := os.Chmod(path, mode); err != nil {
			f.Close()
			return nil, fmt.Errorf("MFA FIFO %s: chmod %o: %w", path, mode, err)
		}
	}
	return f, nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	case m&os.ModeSocket != 0:
		return "socket"
	case m.IsRegular():
		return "regular file"
	}
	return "file of type " + m.Type().String()
}

// Close removes the FIFO (it may be called more than once).
func (f *FIFO) Close() error {
	err := os.Remove(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// ReadCode waits up to timeout (or until ctx ends) for a writer and
// returns the six-digit code it wrote: "123456", with or without a
// trailing newline. The code is not part of any error text.
func (f *FIFO) ReadCode(ctx context.Context, timeout time.Duration) (string, error) {
	// O_NONBLOCK: opening does not wait for a writer, and reads can be
	// cut by a deadline. With no writer connected a read returns EOF at
	// once: poll until one comes.
	fd, err := os.OpenFile(f.Path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", fmt.Errorf("opening MFA FIFO %s: %w", f.Path, err)
	}
	defer fd.Close()
	if st, err := fd.Stat(); err != nil || st.Mode().Type() != os.ModeNamedPipe {
		return "", fmt.Errorf("MFA FIFO %s was replaced by something else", f.Path)
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := fd.SetReadDeadline(deadline); err != nil {
		return "", fmt.Errorf("MFA FIFO %s: %w", f.Path, err)
	}
	stop := context.AfterFunc(ctx, func() { fd.SetReadDeadline(time.Now()) })
	defer stop()
	var got []byte
	buf := make([]byte, maxCodeInput)
	for {
		n, err := fd.Read(buf)
		got = append(got, buf[:n]...)
		switch {
		case len(got) > maxCodeInput:
			return "", fmt.Errorf("MFA FIFO %s: more than %d bytes written; want six digits and a newline", f.Path, maxCodeInput)
		case bytes.IndexByte(got, '\n') >= 0:
			return checkCode(got, f.Path)
		case errors.Is(err, io.EOF) && len(got) > 0:
			return checkCode(got, f.Path) // the writer closed
		case errors.Is(err, io.EOF):
			if ctx.Err() != nil {
				return "", fmt.Errorf("waiting for the MFA code: %w", context.Cause(ctx))
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("MFA FIFO %s: %w (waited %v; write it with: echo 123456 > %s)", f.Path, ErrCodeTimeout, timeout, f.Path)
			}
			time.Sleep(50 * time.Millisecond) // no writer yet
		case errors.Is(err, os.ErrDeadlineExceeded):
			if ctx.Err() != nil {
				return "", fmt.Errorf("waiting for the MFA code: %w", context.Cause(ctx))
			}
			return "", fmt.Errorf("MFA FIFO %s: %w (waited %v; write it with: echo 123456 > %s)", f.Path, ErrCodeTimeout, timeout, f.Path)
		case err != nil:
			return "", fmt.Errorf("reading MFA FIFO %s: %w", f.Path, err)
		}
	}
}

// checkCode accepts six ASCII digits and one optional line end.
func checkCode(b []byte, path string) (string, error) {
	s := string(b)
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		if i != len(b)-1 {
			return "", fmt.Errorf("MFA code from %s: more than one line written; want six digits", path)
		}
		s = s[:i]
	}
	if len(s) > 0 && s[len(s)-1] == '\r' {
		s = s[:len(s)-1]
	}
	if !ValidCode(s) {
		return "", fmt.Errorf("MFA code from %s: want six digits (as the MFA device shows them), got %d characters that are not", path, len(s))
	}
	return s, nil
}

// ValidCode reports whether s is an MFA code: six ASCII digits.
func ValidCode(s string) bool {
	if len(s) != 6 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
