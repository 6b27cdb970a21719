package keyusage

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/datafiles"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// vers makes versions 1..n of key id, version v created at t0 + v hours.
func vers(id uint32, n uint32) []Version {
	var out []Version
	for v := uint32(1); v <= n; v++ {
		out = append(out, Version{ID: id, Version: v, ModTime: t0.Add(time.Duration(v) * time.Hour)})
	}
	return out
}

func statuses(m map[[2]uint32]Verdict, id uint32, n uint32) []string {
	var out []string
	for v := uint32(1); v <= n; v++ {
		out = append(out, m[[2]uint32{id, v}].Status)
	}
	return out
}

func TestClassifyWithoutServer(t *testing.T) {
	m, w := Classify(append(vers(1, 2), vers(5, 1)...), nil)
	if got := statuses(m, 1, 2); !reflect.DeepEqual(got, []string{Unknown, Latest}) || m[[2]uint32{5, 1}].Status != Latest || w != nil {
		t.Fatalf("%v %v %v", got, m[[2]uint32{5, 1}], w)
	}
}

func TestClassifyInnoDB(t *testing.T) {
	u := &Usage{
		Started: t0.Add(100 * time.Hour),
		Tablespaces: []Tablespace{
			// Key 5: one table still has pages of version 2, one is all
			// at version 4.
			{Name: "d/a", Scheme: 1, KeyID: 5, MinKeyVersion: 2, CurrentKeyVersion: 4},
			{Name: "d/b", Scheme: 1, KeyID: 5, MinKeyVersion: 4, CurrentKeyVersion: 4},
			// Key 6: being encrypted (pages at 0 = not yet): all in use.
			{Name: "d/c", Scheme: 1, KeyID: 6, MinKeyVersion: 0, CurrentKeyVersion: 3, Rotating: true},
			// Key 7: a table that is not encrypted counts for nothing.
			{Name: "d/plain", Scheme: 0, KeyID: 7},
		},
		Settings: map[string]string{},
	}
	versions := append(append(vers(5, 5), vers(6, 3)...), vers(7, 2)...)
	m, w := Classify(versions, u)
	if got := statuses(m, 5, 5); !reflect.DeepEqual(got, []string{NotNeeded, InUse, InUse, InUse, InUse}) {
		t.Errorf("key 5: %v", got)
	}
	if got := m[[2]uint32{5, 2}].UsedBy; !reflect.DeepEqual(got, []string{"innodb: 1 tablespace (first: d/a)"}) {
		t.Errorf("key 5 version 2 used by %q", got)
	}
	if got := m[[2]uint32{5, 4}].UsedBy; !reflect.DeepEqual(got, []string{"innodb: 2 tablespaces (first: d/a)"}) {
		t.Errorf("key 5 version 4 used by %q", got)
	}
	if got := statuses(m, 6, 3); !reflect.DeepEqual(got, []string{InUse, InUse, InUse}) {
		t.Errorf("key 6: %v", got)
	}
	if got := statuses(m, 7, 2); !reflect.DeepEqual(got, []string{NotNeeded, Latest}) {
		t.Errorf("key 7: %v", got)
	}
	if len(w) != 0 {
		t.Errorf("warnings: %q", w)
	}
	// The same without InnoDB's table: nothing may be called not needed.
	u.Tablespaces, u.TablespacesError = nil, "no PROCESS privilege"
	m, _ = Classify(versions, u)
	if got := statuses(m, 5, 5); !reflect.DeepEqual(got, []string{Kept, Kept, Kept, Kept, Latest}) {
		t.Errorf("key 5 without InnoDB's information: %v", got)
	}
	if r := m[[2]uint32{5, 1}].Reasons; len(r) != 1 || !strings.Contains(r[0], "InnoDB's use is not known") {
		t.Errorf("reasons: %q", r)
	}
	if _, w := Classify(versions, u); len(w) != 1 || w[0] != "InnoDB's tablespaces are not known: no PROCESS privilege" {
		t.Errorf("warnings: %q", w)
	}
}

func TestClassifyKey1Logs(t *testing.T) {
	u := &Usage{
		Started:  t0.Add(100 * time.Hour),
		RedoLog:  &datafiles.RedoLog{Path: "/d/ib_logfile0", Encrypted: true, KeyID: 1, KeyVersion: 1},
		Binlogs:  []datafiles.Binlog{{Path: "/d/bin.000001", Encrypted: true, KeyID: 1, KeyVersion: 2}, {Path: "/d/bin.000002"}},
		Settings: map[string]string{"aria_encrypt_tables": "OFF"},
	}
	m, w := Classify(vers(1, 4), u)
	if got := statuses(m, 1, 4); !reflect.DeepEqual(got, []string{InUse, InUse, Kept, Latest}) {
		t.Errorf("key 1: %v", got)
	}
	if got := m[[2]uint32{1, 1}].UsedBy; !reflect.DeepEqual(got, []string{"redo-log: /d/ib_logfile0"}) {
		t.Errorf("version 1 used by %q", got)
	}
	if got := m[[2]uint32{1, 2}].UsedBy; !reflect.DeepEqual(got, []string{"binlog: bin.000001"}) {
		t.Errorf("version 2 used by %q", got)
	}
	if r := m[[2]uint32{1, 3}].Reasons; len(r) != 1 || !strings.Contains(r[0], "Aria tables") || !strings.Contains(r[0], "now OFF") {
		t.Errorf("version 3 reasons %q", r)
	}
	if len(w) != 0 {
		t.Errorf("warnings %q", w)
	}
	// A redo log on a version that is not on disk is a warning.
	u.RedoLog.KeyVersion = 9
	u.Binlogs = append(u.Binlogs, datafiles.Binlog{Path: "/d/bin.000003", Error: "permission denied"})
	m, w = Classify(vers(1, 4), u)
	if len(w) != 2 || !strings.Contains(w[0], "a binary log's key version is not known: permission denied") ||
		!strings.Contains(w[1], "redo-log: /d/ib_logfile0 uses key 1 version 9, which is not in the directory") {
		t.Errorf("warnings %q", w)
	}
	if r := strings.Join(m[[2]uint32{1, 1}].Reasons, "\n"); m[[2]uint32{1, 1}].Status != Kept || !strings.Contains(r, "binary log bin.000003 is not known") {
		t.Errorf("version 1: %+v", m[[2]uint32{1, 1}])
	}
}

func TestClassifyKey2TemporaryFiles(t *testing.T) {
	// Versions 1..4 of key 2 created at t0+1h .. t0+4h.
	for _, c := range []struct {
		started time.Time
		want    []string
	}{
		// Started before version 2 existed: versions 1.. may be in
		// temporary files.
		{t0.Add(90 * time.Minute), []string{Kept, Kept, Kept, Latest}},
		// Started after version 3 was created: version 3 may still be
		// used (it was the latest at start), 1 and 2 not.
		{t0.Add(3*time.Hour + 30*time.Minute), []string{NotNeeded, NotNeeded, Kept, Latest}},
		// Started within the second version 4 was created: kept.
		{t0.Add(4*time.Hour + time.Second), []string{NotNeeded, NotNeeded, Kept, Latest}},
		{t0.Add(5 * time.Hour), []string{NotNeeded, NotNeeded, NotNeeded, Latest}},
	} {
		m, _ := Classify(vers(2, 4), &Usage{Started: c.started, Settings: map[string]string{}})
		if got := statuses(m, 2, 4); !reflect.DeepEqual(got, c.want) {
			t.Errorf("server started %v: %v, want %v", c.started, got, c.want)
		}
	}
}

func TestClassifyWarnsAboutMissingVersions(t *testing.T) {
	u := &Usage{Started: t0, Tablespaces: []Tablespace{{Name: "d/x", Scheme: 1, KeyID: 8, MinKeyVersion: 3, CurrentKeyVersion: 3}}, Settings: map[string]string{}}
	_, w := Classify(vers(8, 2), u)
	if len(w) != 1 || !strings.Contains(w[0], "InnoDB tablespace d/x uses key 8 up to version 3, but the highest version in the directory is 2") {
		t.Errorf("warnings %q", w)
	}
}

func TestClassifyKey1Aria(t *testing.T) {
	// Key 1: version 1 is the redo log's, version 3 only an Aria table's,
	// versions 2 and 4 nothing's; key 2 exists (so temporary files are
	// on key 2).
	versions := append(vers(1, 5), vers(2, 1)...)
	u := func(aria *AriaUsage) *Usage {
		return &Usage{Started: t0.Add(100 * time.Hour), Settings: map[string]string{"aria_encrypt_tables": "ON"},
			RedoLog: &datafiles.RedoLog{Path: "/d/ib_logfile0", Encrypted: true, KeyID: 1, KeyVersion: 1}, Aria: aria}
	}
	// Not read: every old version of key 1 is kept, saying why.
	m, _ := Classify(versions, u(nil))
	if got := statuses(m, 1, 5); !reflect.DeepEqual(got, []string{InUse, Kept, Kept, Kept, Latest}) {
		t.Errorf("Aria not read: %v", got)
	}
	if r := m[[2]uint32{1, 3}].Reasons; len(r) != 1 || !strings.HasPrefix(r[0], "Aria usage is unknown: ") || !strings.Contains(r[0], "now ON") ||
		!strings.Contains(r[0], "add --data-files") {
		t.Errorf("reasons %q", r)
	}
	// Read: the Aria table's version is in use, the others not needed.
	read := &AriaUsage{Tables: map[[2]uint32][]string{{1, 3}: {"d/a.MAD", "d/b.MAD"}}, Encrypted: 2}
	m, w := Classify(versions, u(read))
	if got := statuses(m, 1, 5); !reflect.DeepEqual(got, []string{InUse, NotNeeded, InUse, NotNeeded, Latest}) || len(w) != 0 {
		t.Errorf("Aria read: %v %q", got, w)
	}
	if got := m[[2]uint32{1, 3}].UsedBy; !reflect.DeepEqual(got, []string{"aria: 2 tables (first: d/a.MAD)"}) {
		t.Errorf("version 3 used by %q", got)
	}
	if r := m[[2]uint32{1, 2}].Reasons; len(r) != 1 || !strings.Contains(r[0], "nor the pages of its Aria tables (2 encrypted, read from its datadir)") {
		t.Errorf("version 2 reasons %q", r)
	}
	// A file not read keeps every old version that nothing else marks.
	read.Unread = []string{"d/c.MAI: permission denied"}
	m, w = Classify(versions, u(read))
	if got := statuses(m, 1, 5); !reflect.DeepEqual(got, []string{InUse, Kept, InUse, Kept, Latest}) ||
		len(w) != 1 || !strings.Contains(w[0], "d/c.MAI: permission denied") {
		t.Errorf("an Aria file not read: %v %q", got, w)
	}
	// Without key 2 the server puts temporary files (and temporary Aria
	// tables) on key 1: the version that was the latest at the server's
	// start (3) and later ones are kept.
	m, _ = Classify(vers(1, 5), &Usage{Started: t0.Add(3*time.Hour + 30*time.Minute), Settings: map[string]string{}, Aria: &AriaUsage{}})
	if got := statuses(m, 1, 5); !reflect.DeepEqual(got, []string{NotNeeded, NotNeeded, Kept, Kept, Latest}) {
		t.Errorf("no key 2: %v", got)
	}
}
