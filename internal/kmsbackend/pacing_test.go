package kmsbackend

import (
	"context"
	"testing"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/kmstest"
	"github.com/mariadb-go/aws_key_management/internal/ratelimit"
)

// Every HTTP attempt, the SDK's retries included, goes through the
// client's Limiter, and a throttled attempt cuts its rate: the emulator's
// quota throttles the burst over it, and the limiter saw each attempt
// the emulator saw and each throttling.
func TestPacingSeesEveryAttempt(t *testing.T) {
	srv, url := emulatorEnv(t, kmstest.Config{})
	lim := ratelimit.NewLimiter(nil)
	lim.Min = 50 // keep the test quick after the cut
	c, err := New(context.Background(), Config{EndpointURL: url, RequestTimeout: 2 * time.Second, Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	blob, err := c.GenerateDataKeyWithoutPlaintext(context.Background(), "alias/mariadb-a", "AES_128")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetLimits(kmstest.Limits{Quota: 3}); err != nil {
		t.Fatal(err)
	}
	srv.ResetCalls()
	dst := make([]byte, 32)
	for i := range 5 {
		if _, err := c.Decrypt(context.Background(), blob, dst); err != nil {
			t.Logf("Decrypt %d: %v", i+1, err) // the SDK's 3 attempts may all be throttled
		}
	}
	emu, st := srv.LimitStats(), c.Pacing()
	if emu.Throttled == 0 {
		t.Fatalf("the quota throttled nothing: %+v", emu)
	}
	if int(st.Throttled) != emu.Throttled || st.Cuts == 0 || st.Rate == 0 {
		t.Errorf("limiter %+v, emulator %+v: want the same throttled count, a cut and a rate", st, emu)
	}
	if got := int(st.Requests) - 1; got != emu.Requests { // minus the GenerateDataKey before the reset
		t.Errorf("limiter paced %d attempts after the reset, the emulator saw %d", got, emu.Requests)
	}
}
