package keys_test

import (
	"context"
	"testing"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/keys"
	"github.com/mariadb-go/aws_key_management/internal/mock"
)

// Stats counts what the Manager holds and the KMS calls it made, with
// when the last one succeeded and failed.
func TestStats(t *testing.T) {
	dir := t.TempDir()
	writeKeyFile(t, dir, 1, 1, 16)
	writeKeyFile(t, dir, 1, 2, 16)
	writeKeyFile(t, dir, 2, 1, 16)
	e := newEnv(t, dir, nil)
	if s := e.m.Stats(); s != (keys.Stats{}) {
		t.Fatalf("a fresh Manager has stats %+v", s)
	}
	t0 := e.clock.Now()
	res := e.m.Preload(context.Background(), keys.PreloadConfig{Parallel: 2})
	s := e.m.Stats()
	if s.KeyIDs != 2 || s.Versions != 3 || s.Failed != 0 || s.Start != res || res.Loaded != 3 {
		t.Fatalf("after Preload: %+v (Preload %+v)", s, res)
	}
	if s.Decrypt != (keys.OpStats{Calls: 3}) || s.Generate != (keys.OpStats{}) || !s.LastSuccess.Equal(t0) || !s.LastFailure.IsZero() {
		t.Fatalf("after Preload: %+v", s)
	}

	// A new key: one Generate and one Decrypt. Then KMS fails.
	e.clock.Advance(time.Minute)
	e.wantLatest(t, 3, 1)
	e.fake.set(func(f *fakeKMS) {
		f.genErr = &mock.Error{Code: "ThrottlingException", Message: "slow down"}
		f.decErr = &mock.Error{Code: "KMSInternalException", Message: "down"}
	})
	e.clock.Advance(time.Minute)
	if v := e.m.LatestKeyVersion(4); v != keys.VersionInvalid {
		t.Fatalf("LatestKeyVersion(4) = %d", v)
	}
	writeKeyFile(t, dir, 5, 1, 16)
	if _, code := e.m.GetKey(5, 1, make([]byte, 32)); code != keys.VersionInvalid {
		t.Fatalf("GetKey(5, 1) = %d", code)
	}
	s = e.m.Stats()
	want := keys.Stats{KeyIDs: 3, Versions: 4, Failed: 1,
		Decrypt:     keys.OpStats{Calls: 5, Errors: 1},
		Generate:    keys.OpStats{Calls: 2, Errors: 1},
		LastSuccess: t0.Add(time.Minute), LastFailure: t0.Add(2 * time.Minute), Start: res}
	if !s.LastSuccess.Equal(want.LastSuccess) || !s.LastFailure.Equal(want.LastFailure) {
		t.Fatalf("last success %v, failure %v; want %v, %v", s.LastSuccess, s.LastFailure, want.LastSuccess, want.LastFailure)
	}
	s.LastSuccess, s.LastFailure = want.LastSuccess, want.LastFailure
	if s != want {
		t.Fatalf("stats\n got  %+v\n want %+v", s, want)
	}
	e.m.Close(waitLimit)
	if s := e.m.Stats(); s.KeyIDs != 0 || s.Versions != 0 || s.Decrypt.Calls != 5 {
		t.Fatalf("after Close: %+v (nothing held, the counters kept)", s)
	}
}
