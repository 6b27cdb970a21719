package keyusage

import (
	"fmt"
	"path/filepath"
	"time"
)

// Status of a key version, from the most to the least needed.
const (
	// InUse: something the server has names this version.
	InUse = "in-use"
	// Latest: the highest version of its key; new data is encrypted
	// with it.
	Latest = "latest"
	// Kept: nothing found uses it, but its use cannot be ruled out (see
	// the reasons).
	Kept = "kept"
	// NotNeeded: nothing the server has uses it: safe to archive (keep
	// it with the backups that may still need it).
	NotNeeded = "not-needed"
	// Unknown: no server was asked.
	Unknown = "unknown"
)

// Key ids with a fixed meaning in MariaDB (include/mysql/plugin_encryption.h).
const (
	KeySystemData    = 1 // ENCRYPTION_KEY_SYSTEM_DATA: redo log, binlogs, Aria, InnoDB's default
	KeyTemporaryData = 2 // ENCRYPTION_KEY_TEMPORARY_DATA: temporary files
)

// Version is a key version found on disk.
type Version struct {
	ID, Version uint32
	// ModTime is the key file's modification time: when the version was
	// created (Store.Replace keeps it).
	ModTime time.Time
}

// Verdict is what Classify says of one version.
type Verdict struct {
	Status string
	// UsedBy names what uses the version: "innodb: N tablespaces
	// (first: db/t)", "redo-log: <file>", "binlog: <file>".
	UsedBy []string
	// Reasons say why a version is kept, or why it is not needed.
	Reasons []string
}

// tempFileSlack is how much earlier than the server's start the next
// version must have been created for a version of key 2 to be out of use
// by temporary files: the start time is known to the second.
const tempFileSlack = 2 * time.Second

// Classify decides, for every version on disk, whether the server u still
// needs it. With u nil every version but the latest is Unknown. It also
// returns warnings: versions the server uses that are not on disk.
//
// The rules, conservatively:
//   - InnoDB: a tablespace of key K may have pages encrypted with any
//     version from its MIN_KEY_VERSION (pages not yet encrypted count as
//     version 1) to the latest: all those are in use.
//   - Key 1: the redo log's version and each binary/relay log's version
//     are in use. Aria tables keep the version each page was written
//     with: with u.Aria (their files were read) the versions their pages
//     have are in use; without it every version of key 1 is kept unless
//     something else marks it in use.
//   - Key 2 (key 1 when there is no key 2: the server then uses key 1
//     for them): temporary files use the version that was the latest
//     when they were created; they do not outlive the server. A version
//     is out of their use only if a newer one existed before the server
//     started.
//   - Anything the server could not tell (no privilege, a log file not
//     readable) keeps every version it could concern.
func Classify(versions []Version, u *Usage) (map[[2]uint32]Verdict, []string) {
	latest := map[uint32]uint32{}
	created := map[[2]uint32]time.Time{}
	for _, v := range versions {
		latest[v.ID] = max(latest[v.ID], v.Version)
		created[[2]uint32{v.ID, v.Version}] = v.ModTime
	}
	out := make(map[[2]uint32]Verdict, len(versions))
	var warnings []string
	if u == nil {
		for _, v := range versions {
			if v.Version == latest[v.ID] {
				out[[2]uint32{v.ID, v.Version}] = Verdict{Status: Latest}
			} else {
				out[[2]uint32{v.ID, v.Version}] = Verdict{Status: Unknown, Reasons: []string{"no server was asked (--server) which versions it uses"}}
			}
		}
		return out, nil
	}

	// Per key id, the encrypted tablespaces and the lowest version each
	// may have pages in.
	type user struct {
		lo   uint32
		name string
	}
	inno := map[uint32][]user{}
	for _, t := range u.Tablespaces {
		if t.Scheme == 0 && t.MinKeyVersion == 0 && !t.Rotating {
			continue // not encrypted
		}
		inno[t.KeyID] = append(inno[t.KeyID], user{max(t.MinKeyVersion, 1), t.Name})
		if top := max(t.CurrentKeyVersion, t.MinKeyVersion); top > latest[t.KeyID] {
			warnings = append(warnings, fmt.Sprintf("InnoDB tablespace %s uses key %d up to version %d, but the highest version in the directory is %d: is this the server's key directory?",
				t.Name, t.KeyID, top, latest[t.KeyID]))
		}
	}
	logUsers := map[[2]uint32][]string{}
	if u.RedoLog != nil && u.RedoLog.Encrypted {
		k := [2]uint32{u.RedoLog.KeyID, u.RedoLog.KeyVersion}
		logUsers[k] = append(logUsers[k], "redo-log: "+u.RedoLog.Path)
	}
	// What the server could not tell is said once, here; the versions it
	// concerns are kept with a short reason.
	for _, e := range []struct{ what, err string }{
		{"InnoDB's tablespaces are not known", u.TablespacesError},
		{"the redo log's key version is not known", u.RedoLogError},
		{"the binary logs are not known", u.BinlogsError},
	} {
		if e.err != "" {
			warnings = append(warnings, e.what+": "+e.err)
		}
	}
	var unreadableLogs []string
	for _, b := range u.Binlogs {
		switch {
		case b.Error != "":
			unreadableLogs = append(unreadableLogs, b.Path)
			warnings = append(warnings, "a binary log's key version is not known: "+b.Error)
		case b.Encrypted:
			k := [2]uint32{b.KeyID, b.KeyVersion}
			logUsers[k] = append(logUsers[k], "binlog: "+filepath.Base(b.Path))
		}
	}
	ariaUsers := map[[2]uint32][]string{}
	if u.Aria != nil {
		ariaUsers = u.Aria.Tables
		for _, f := range u.Aria.Unread {
			warnings = append(warnings, "an Aria table's key versions are not known: "+f)
		}
	}
	for k := range logUsers {
		if _, ok := created[k]; !ok {
			warnings = append(warnings, fmt.Sprintf("%s uses key %d version %d, which is not in the directory: the server cannot start (redo log) or read it (binlog) without it",
				logUsers[k][0], k[0], k[1]))
		}
	}

	for _, v := range versions {
		k := [2]uint32{v.ID, v.Version}
		var d Verdict
		var n int
		var first string
		for _, t := range inno[v.ID] {
			if v.Version >= t.lo {
				if n++; n == 1 {
					first = t.name
				}
			}
		}
		if n > 0 {
			d.UsedBy = append(d.UsedBy, fmt.Sprintf("innodb: %d tablespace%s (first: %s)", n, plural(n), first))
		}
		if a := ariaUsers[k]; len(a) > 0 {
			d.UsedBy = append(d.UsedBy, fmt.Sprintf("aria: %d table%s (first: %s)", len(a), plural(len(a)), a[0]))
		}
		d.UsedBy = append(d.UsedBy, logUsers[k]...)
		isLatest := v.Version == latest[v.ID]
		if !isLatest {
			d.Reasons = keepReasons(v, u, latest, created, unreadableLogs)
		}
		switch {
		case len(d.UsedBy) > 0:
			d.Status = InUse
		case isLatest:
			d.Status = Latest
		case len(d.Reasons) > 0:
			d.Status = Kept
		default:
			d.Status = NotNeeded
			d.Reasons = []string{fmt.Sprintf("no InnoDB tablespace, log or temporary file of the server uses key %d version %d", v.ID, v.Version)}
			if v.ID == KeySystemData && u.Aria != nil {
				d.Reasons[0] += fmt.Sprintf(", nor the pages of its Aria tables (%d encrypted, read from its datadir)", u.Aria.Encrypted)
			}
		}
		out[k] = d
	}
	return out, warnings
}

// keepReasons says why a version that nothing names must still be kept.
func keepReasons(v Version, u *Usage, latest map[uint32]uint32, created map[[2]uint32]time.Time, unreadableLogs []string) []string {
	var r []string
	if u.TablespacesError != "" {
		r = append(r, "InnoDB's use is not known (see the warnings)")
	}
	if v.ID == KeySystemData {
		switch {
		case u.Aria == nil:
			r = append(r, fmt.Sprintf("Aria usage is unknown: Aria tables encrypted with aria_encrypt_tables (now %s) keep the version each page was written with; add --data-files (on the server's host) to read them",
				orUnknown(u.Settings["aria_encrypt_tables"])))
		case len(u.Aria.Unread) > 0:
			r = append(r, fmt.Sprintf("Aria usage is not complete: %d Aria files could not be read (see the warnings)", len(u.Aria.Unread)))
		}
		if u.RedoLogError != "" {
			r = append(r, "the redo log's version is not known (see the warnings)")
		}
		if u.BinlogsError != "" {
			r = append(r, "the binary logs' versions are not known (see the warnings)")
		}
		for _, p := range unreadableLogs {
			r = append(r, "the version of binary log "+filepath.Base(p)+" is not known (see the warnings)")
		}
	}
	if v.ID == KeyTemporaryData || v.ID == KeySystemData && latest[KeyTemporaryData] == 0 {
		// The next version on disk: v was the latest until it appeared.
		next := latest[v.ID]
		for w := range created {
			if w[0] == v.ID && w[1] > v.Version && w[1] < next {
				next = w[1]
			}
		}
		if t := created[[2]uint32{v.ID, next}]; t.IsZero() || !t.Add(tempFileSlack).Before(u.Started) {
			r = append(r, fmt.Sprintf("temporary files of the running server may use it (version %d is from %s, the server started %s); not needed after a restart",
				next, stamp(t), stamp(u.Started)))
		}
	}
	return r
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
