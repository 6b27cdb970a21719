package keys

import (
	"fmt"
	"sort"
	"strings"

	"github.com/mariadb-go/aws_key_management/internal/datafiles"
	"github.com/mariadb-go/aws_key_management/internal/keyfile"
)

// maxGuardFiles bounds the tablespaces whose page 0 Open reads when the
// key directory is empty (one read of one page each).
const maxGuardFiles = 100000

// The restore guard. A datadir restored without its key files, or a key
// directory that is not where the key files are, looks to the plugin like
// a first start: every key id is new, and the server's first request for
// one would make a new version 1, which cannot read the data that is
// there (InnoDB then reports the tables as corrupted). So when Open finds
// no key file at all, it looks cheaply at the datadir (the redo log
// header, page 0 of each tablespace and the header of each Aria table:
// their encryption headers name a key id) and, if it finds encrypted data, generates no key at all (the
// key directory is not this data's), naming the files and the fix. A
// real first start has no encrypted data yet, and is not affected.

// scanGuard fills m.guard; called by Open with no key file on disk.
func (m *Manager) scanGuard() {
	if m.cfg.DataDir == "" {
		return
	}
	ev, complete := datafiles.FindEncrypted(m.cfg.DataDir, maxGuardFiles)
	if len(ev) == 0 {
		return
	}
	m.guard = ev
	ids := m.guardIDs()
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = fmt.Sprint(id)
	}
	msg := fmt.Sprintf("no key file in %s, but the datadir holds data encrypted with key ids %s (%s): no new key will be generated (a new key would not read that data); %s",
		m.keyDirName(), strings.Join(names, ", "), evidence(ev, ids), m.copyBack())
	if !complete {
		msg += fmt.Sprintf(" (only the first %d tablespaces were looked at)", maxGuardFiles)
	}
	m.cfg.Log.Error(msg)
}

// guardRefuses says why version 1 of id must not be generated ("" if it
// may be). While the guard is up no key id is generated: the key
// directory in use is not the one of this data.
func (m *Manager) guardRefuses(id uint32) string {
	if len(m.guard) == 0 {
		return ""
	}
	if ev := m.guard[id]; len(ev) > 0 {
		return fmt.Sprintf("key id %d has no key file in %s, but the datadir holds data encrypted with it (%s): a new key %d could not read that data, so none is generated; %s",
			id, m.keyDirName(), evidence(map[uint32][]datafiles.Evidence{id: ev}, []uint32{id}), id, m.copyBack())
	}
	return fmt.Sprintf("key id %d is not generated: %s has no key file, but the datadir holds encrypted data (%s), so it is not the key directory of this data; %s",
		id, m.keyDirName(), evidence(m.guard, m.guardIDs()), m.copyBack())
}

// guardIDs are the key ids of the guard, sorted.
func (m *Manager) guardIDs() []uint32 {
	ids := make([]uint32, 0, len(m.guard))
	for id := range m.guard {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func (m *Manager) keyDirName() string {
	if d := m.cfg.Store.Dir(); d != "" && d != "." {
		return d
	}
	return "the datadir"
}

func (m *Manager) copyBack() string {
	return fmt.Sprintf("copy the key files (%s*) from the backup, or from the source server's key directory, into %s "+
		"(or write them back from a recovery bundle with mariadb-aws-keys import) and restart the server",
		keyfile.Prefix, m.keyDirName())
}

// evidence names at most 3 files per key id.
func evidence(ev map[uint32][]datafiles.Evidence, ids []uint32) string {
	var parts []string
	for _, id := range ids {
		for i, e := range ev[id] {
			if i == 3 {
				parts = append(parts, fmt.Sprintf("%d more files", len(ev[id])-3))
				break
			}
			parts = append(parts, e.String())
		}
	}
	return strings.Join(parts, ", ")
}
