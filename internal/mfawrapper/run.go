package mfawrapper

import (
	"context"
	"fmt"
	"time"
)

// stsTimeout bounds the GetSessionToken call, retries included.
const stsTimeout = 60 * time.Second

// Prepare does everything before the exec: it creates the FIFO, waits
// for the code, removes the FIFO (on every path), gets the session and
// returns base with the session's credentials. logf gets progress lines
// (never a secret or the code).
func Prepare(ctx context.Context, c Config, api STS, base []string, logf func(string)) ([]string, error) {
	fifo, err := CreateFIFO(c.FIFO, c.FIFOGroup)
	if err != nil {
		return nil, err
	}
	defer fifo.Close()
	who := "its owner and root"
	if c.FIFOGroup != "" {
		who = "its owner, group " + c.FIFOGroup + " and root"
	}
	logf(fmt.Sprintf("waiting up to %v for the code of MFA device %s: write it to %s (mode %04o: %s may), e.g. echo 123456 > %s",
		c.CodeTimeout, c.MFASerial, c.FIFO, uint32(fifo.Mode), who, c.FIFO))
	code, err := fifo.ReadCode(ctx, c.CodeTimeout)
	if cerr := fifo.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("removing MFA FIFO %s: %w", c.FIFO, cerr)
	}
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, stsTimeout)
	defer cancel()
	s, err := GetSession(sctx, api, c.MFASerial, code, c.SessionDuration)
	if err != nil {
		return nil, err
	}
	logf(fmt.Sprintf("got session credentials %s for MFA device %s; they expire at %s (in %v)",
		s.AccessKeyID, c.MFASerial, s.Expires.Format(time.RFC3339), time.Until(s.Expires).Round(time.Minute)))
	return Environ(base, s), nil
}
