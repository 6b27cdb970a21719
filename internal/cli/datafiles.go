package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mariadb-go/aws_key_management/internal/datafiles"
	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/keyops"
	"github.com/mariadb-go/aws_key_management/internal/toolconfig"
)

// dataFilesHelp is the part of verify's help on data files.
const dataFilesHelp = `
Data files: when the key directory is a datadir or a backup of one (it has
ibdata1, ib_logfile0 or DATABASE/*.ibd), or --datadir names one, the data
files are read too, offline: every page of every InnoDB tablespace (its key
id and each page's key version) and of every encrypted Aria table
(DATABASE/*.MAI, *.MAD: key 1), the redo log header and the start of each
binary log. Each key version they need whose key file is missing is a
failure naming the data files and the key file to copy back. With the key
files outside the datadir give both: --datadir DATADIR KEYDIR.
--no-data-files skips this.`

// listDataFilesHelp is the part of list's help on data files.
const listDataFilesHelp = `
--data-files also reads the data files (as verify does by default: every page
of every InnoDB tablespace and encrypted Aria table, the redo log header, the
binary logs) and reports each key version they need whose key file is
missing; which data files: those of --datadir if given, else of DIR, else the
option files' datadir. With --server, when they are the server's datadir,
the versions of key 1 the Aria tables' pages use are in use and the others
are no longer kept for Aria.`

// dataFilesFlag adds verify's --no-data-files, or list's --data-files
// (list reads no data file unless asked: it is a quick look).
func (a *app) dataFilesFlag(cmd *cobra.Command, list bool) {
	if list {
		cmd.Flags().BoolVar(&a.dataFiles, "data-files", false, "also read the data files (InnoDB tablespaces, Aria tables, redo log, binary logs) for the key versions they need, as verify does")
		return
	}
	cmd.Flags().BoolVar(&a.noDataFiles, "no-data-files", false, "do not read the data files (InnoDB tablespaces, Aria tables, redo log, binary logs) for the key versions they need")
}

// dataDir picks the directory whose data files are checked (none unless
// want: verify without --no-data-files, list with --data-files): --datadir if
// given; else the key directory named on the command line if it holds
// data files; else, with no directory given, the option files' datadir
// if it does. "" means none.
func (a *app) dataDir(s toolconfig.Settings, want bool) (string, error) {
	switch {
	case !want:
		return "", nil
	case a.flags.DataDir != "":
		if !datafiles.LooksLikeDataDir(a.flags.DataDir) {
			return "", usageError(fmt.Errorf("--datadir %s holds no MariaDB data files (ibdata1, ib_logfile0 or DATABASE/*.ibd): give the datadir or the backup directory, or --no-data-files", a.flags.DataDir))
		}
		return a.flags.DataDir, nil
	case a.flags.Dir != "" || a.flags.KeyfileDir != "":
		if datafiles.LooksLikeDataDir(s.KeyDir) {
			return s.KeyDir, nil
		}
		return "", nil
	case s.DataDir != "" && datafiles.LooksLikeDataDir(s.DataDir):
		return s.DataDir, nil
	}
	return "", nil
}

// checkData reads the data files of dir and compares what they need with
// the key files; it reports each missing key file and each data file it
// could not read on stderr, and returns how many of those there were.
func (a *app) checkData(ctx context.Context, dir, keyDir string, entries []keyfile.Entry) (*keyops.DataCheck, int, error) {
	scan, err := a.scanData(ctx, dir)
	if err != nil {
		return nil, 0, err
	}
	dc, failed := a.compareData(scan, keyDir, entries)
	return dc, failed, nil
}

// scanData reads the data files of dir, with a progress bar on a
// terminal.
func (a *app) scanData(ctx context.Context, dir string) (*datafiles.Scan, error) {
	var newProgress func(int, string) datafiles.Progress
	if a.env.StderrTerminal && !a.noProgress {
		newProgress = func(total int, what string) datafiles.Progress { return newBar(a.env.Stderr, total, what) }
	}
	scan, err := datafiles.ScanDir(ctx, dir, min(a.parallel, 8), newProgress)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, interrupted(ctx)
		}
		return nil, fmt.Errorf("reading the data files of %s: %w", dir, err)
	}
	return scan, nil
}

// compareData compares what the data files need with the key files, and
// reports each missing key file and each data file not read on stderr;
// it returns how many of those there were.
func (a *app) compareData(scan *datafiles.Scan, keyDir string, entries []keyfile.Entry) (*keyops.DataCheck, int) {
	dc := keyops.CheckData(scan, keyDir, entries)
	for _, m := range dc.Missing {
		a.warnf("MISSING key file %s: %s", m.File, m.Message)
	}
	for _, e := range scan.Errors {
		a.warnf("FAILED reading a data file (the key versions it needs are not known): %s", e)
	}
	return dc, len(dc.Missing) + len(scan.Errors)
}

// dataSummary is the one line on the data files.
func dataSummary(dc *keyops.DataCheck) string {
	enc := 0
	for _, t := range dc.Tablespaces {
		if t.Encrypted || len(t.Versions) > 0 {
			enc++
		}
	}
	redo := "no redo log"
	switch {
	case dc.RedoLog != nil && dc.RedoLog.Encrypted:
		redo = fmt.Sprintf("redo log on key %d version %d", dc.RedoLog.KeyID, dc.RedoLog.KeyVersion)
	case dc.RedoLog != nil:
		redo = "redo log not encrypted"
	}
	aria := 0
	for _, t := range dc.AriaTables {
		if t.Encrypted {
			aria++
		}
	}
	return fmt.Sprintf("data files in %s: %d InnoDB tablespaces (%d encrypted), %d Aria tables (%d encrypted), %s, %d binary logs: %d key versions needed, %d missing, %d files not read",
		dc.Directory, len(dc.Tablespaces), enc, len(dc.AriaTables), aria, redo, len(dc.Binlogs), len(dc.Uses), len(dc.Missing), len(dc.Errors))
}

// usedBy names the data files of a needed version.
func usedBy(u datafiles.Use) string {
	s := strings.Join(u.Files, ", ")
	if u.MoreFiles > 0 {
		s += fmt.Sprintf(" and %d more", u.MoreFiles)
	}
	return s
}
