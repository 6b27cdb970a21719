package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mariadb-go/aws_key_management/internal/datafiles"
	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/keyops"
	"github.com/mariadb-go/aws_key_management/internal/keyusage"
)

func (a *app) listCommand() *cobra.Command {
	var kms, server bool
	var password string
	cmd := &cobra.Command{
		Use:     "list [DIR]",
		GroupID: groupKeyFiles,
		Short:   "List the key files, the KMS key of each (--kms) and which versions the server still needs (--server)",
		Long: `List every key file of DIR (default: aws_key_management_keyfile_dir, else the
datadir): key id, version, size, mode and age, and the names the plugin ignores
(with the reason).

--kms unwraps each file (kms:Decrypt) to show the ARN of the KMS key it is
wrapped under; the key is wiped at once.

--server (implied by --socket, --host, --port, --user, --password) asks the
running server which versions it still uses: InnoDB's tablespaces
(information_schema.INNODB_TABLESPACES_ENCRYPTION, needs PROCESS), the redo
log's and each binary log's version (read from their file headers: run the
tool on the server's host) and temporary files. Each version then gets a
status: in-use, latest, kept (its use cannot be ruled out; the reasons say
why; every old version of key 1 is kept unless --data-files reads the
server's Aria tables), or not-needed (safe to archive, with the backups that
may need it).
Connection settings not given come from the option files' [client],
[client-server], [client-mariadb] and [mariadb-aws-keys] groups, MYSQL_PWD,
and the server's socket.
` + listDataFilesHelp,
		Example: `  # the datadir of /etc/mysql/my.cnf
  mariadb-aws-keys list
  # a backup, with the KMS key of each file
  mariadb-aws-keys list --kms /backup/2025-06-01
  # which versions the running server still needs
  mariadb-aws-keys list --server --socket /run/mysqld/mysqld.sock --user root
  # the same, reading its Aria tables too (key 1), on the server's host
  mariadb-aws-keys list --server --data-files
  # a backup, with the key versions its data files need
  mariadb-aws-keys list --data-files /backup/2025-06-01
  # for a script
  mariadb-aws-keys list --server --json | jq '.keys[] | select(.status == "not-needed") | .file'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			for _, n := range []string{"socket", "host", "port", "user", "password"} {
				server = server || f.Changed(n)
			}
			if f.Changed("password") {
				p, err := a.password(password)
				if err != nil {
					return err
				}
				a.flags.Password = &p
			}
			return a.list(cmd.Context(), args, kms, server)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&kms, "kms", false, "unwrap each file to show the KMS key it is wrapped under (kms:Decrypt)")
	f.BoolVar(&server, "server", false, "ask the running server which versions it uses")
	f.StringVarP(&a.flags.Socket, "socket", "S", "", "the server's Unix socket")
	f.StringVarP(&a.flags.Host, "host", "h", "", "the server's host (TCP; \"localhost\" means the socket)")
	f.IntVarP(&a.flags.Port, "port", "P", 0, "the server's TCP port")
	f.StringVarP(&a.flags.User, "user", "u", "", "user to connect as (default: [client] user, else the login name)")
	f.StringVarP(&password, "password", "p", "", "password (default: MYSQL_PWD, then [client] password); without a value: ask")
	f.Lookup("password").NoOptDefVal = askPassword
	cmd.Flags().BoolP("help", "", false, "help for list") // -h is --host, as in MariaDB's clients
	a.dataFilesFlag(cmd, true)
	return cmd
}

// askPassword is the value of --password given without one (so a
// password that is literally "(ask)" must come from MYSQL_PWD).
const askPassword = "(ask)"

func (a *app) password(v string) (string, error) {
	if v != askPassword {
		return v, nil
	}
	if a.env.ReadPassword == nil {
		return "", usageError(errors.New("--password without a value asks on a terminal, and there is none: give --password=..., or MYSQL_PWD"))
	}
	return a.env.ReadPassword("Enter password: ")
}

func (a *app) list(ctx context.Context, args []string, kms, server bool) error {
	s, err := a.settings(args)
	if err != nil {
		return err
	}
	dataDir, err := a.dataDir(s, a.dataFiles)
	if err != nil {
		return err
	}
	r := a.runner()
	o := keyops.ListOptions{Runner: r}
	if kms {
		c, err := a.kmsClient(ctx, s)
		if err != nil {
			return err
		}
		o.KMS = c
	}
	if server {
		db, err := keyusage.Open(ctx, s.Conn)
		if err != nil {
			return fmt.Errorf("%w; give --socket, or --host and --port, --user and --password (or MYSQL_PWD); or drop --server", err)
		}
		defer db.Close()
		if o.Usage, err = keyusage.FromServer(ctx, db); err != nil {
			return fmt.Errorf("asking the server: %w", err)
		}
	}
	var scan *datafiles.Scan
	if dataDir != "" {
		// A directory that is not a key directory is said before the
		// data files are read.
		if _, _, err := keyops.OpenDir(s.KeyDir); err != nil {
			return usageError(err)
		}
		if scan, err = a.scanData(ctx, dataDir); err != nil {
			return err
		}
		if u := o.Usage; u != nil {
			// The Aria tables' pages say which versions of key 1 they use,
			// if these are the server's files.
			if keyops.SameDir(dataDir, u.DataDir) {
				u.Aria = keyusage.AriaFromScan(scan)
			} else {
				a.warnf("warning: the data files read (%s) are not the server's (datadir %s): the server's Aria tables were not read, and every old version of key 1 is kept", dataDir, u.DataDir)
			}
		}
	}
	res, err := keyops.List(ctx, s.KeyDir, o)
	if err != nil {
		return usageError(err)
	}
	a.lockWarning(r)
	failed := 0
	for _, k := range res.Keys {
		if k.Error != "" {
			failed++
			a.warnf("%s", prefixFile(k.File, k.Error))
		}
	}
	if u := o.Usage; u != nil {
		// Something the server could not tell (the warnings say what):
		// the statuses are conservative, but not complete.
		if u.TablespacesError != "" || u.RedoLogError != "" || u.BinlogsError != "" {
			failed++
		}
		for _, b := range u.Binlogs {
			if b.Error != "" {
				failed++
			}
		}
	}
	for _, w := range res.Warnings {
		a.warnf("warning: %s", w)
	}
	if scan != nil {
		entries := make([]keyfile.Entry, len(res.Keys))
		for i, k := range res.Keys {
			entries[i] = keyfile.Entry{ID: k.KeyID, Version: k.Version}
		}
		var dataFailed int
		res.DataFiles, dataFailed = a.compareData(scan, res.Directory, entries)
		failed += dataFailed
	}
	if a.json {
		err = a.printJSON(res)
	} else {
		err = a.printList(res, kms)
	}
	if err != nil {
		return err
	}
	if err := interrupted(ctx); err != nil {
		return err
	}
	if failed > 0 {
		return errReported
	}
	return nil
}

// prefixFile makes sure a message names its key file.
func prefixFile(file, msg string) string {
	if strings.Contains(msg, file) {
		return msg
	}
	return file + ": " + msg
}

func (a *app) printList(res *keyops.ListResult, kms bool) error {
	out := a.env.Stdout
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	head := "KEY\tVERSION\tSIZE\tMODE\tAGE\t"
	if kms {
		head += "CMK\t"
	}
	fmt.Fprintln(tw, head+"STATUS\tUSED BY / WHY")
	count := map[string]int{}
	for _, k := range res.Keys {
		count[k.Status]++
		row := fmt.Sprintf("%d\t%d\t%d\t%s\t%s\t", k.KeyID, k.Version, k.Size, k.Mode, age(k.AgeSeconds))
		if kms {
			cmk := k.CMK
			if cmk == "" {
				cmk = "-"
			}
			row += cmk + "\t"
		}
		detail := strings.Join(k.UsedBy, "; ")
		if detail == "" && len(k.Reasons) > 0 {
			detail = k.Reasons[0]
			if len(k.Reasons) > 1 {
				detail += fmt.Sprintf(" (+%d more reasons, see --json)", len(k.Reasons)-1)
			}
		}
		if k.Error != "" {
			detail = "ERROR: " + k.Error
		}
		fmt.Fprintln(tw, row+k.Status+"\t"+detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, ig := range res.Ignored {
		fmt.Fprintf(out, "ignored: %s: %s\n", ig.Name, ig.Reason)
	}
	for _, l := range res.Leftovers {
		fmt.Fprintf(out, "leftover: %s\n", l)
	}
	if u := res.Server; u != nil {
		redo := "not encrypted"
		switch {
		case u.RedoLog != nil && u.RedoLog.Encrypted:
			redo = fmt.Sprintf("key 1 version %d", u.RedoLog.KeyVersion)
		case u.RedoLogError != "":
			redo = "not read"
		}
		enc := 0
		for _, t := range u.Tablespaces {
			if t.Scheme != 0 || t.MinKeyVersion != 0 {
				enc++
			}
		}
		inno := fmt.Sprintf("%d encrypted InnoDB tablespaces", enc)
		if u.TablespacesError != "" {
			inno = "InnoDB tablespaces not known"
		}
		logs := fmt.Sprintf("%d binary/relay logs", len(u.Binlogs))
		if u.BinlogsError != "" {
			logs = "binary logs not known"
		}
		fmt.Fprintf(out, "server: %s, started %s; %s; redo log: %s; %s\n",
			u.Version, u.Started.UTC().Format(time.RFC3339), inno, redo, logs)
	}
	var parts []string
	for _, st := range []string{keyusage.InUse, keyusage.Latest, keyusage.Kept, keyusage.NotNeeded, keyusage.Unknown} {
		if n := count[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	fmt.Fprintf(out, "%d key files in %s: %s\n", len(res.Keys), res.Directory, strings.Join(parts, ", "))
	if res.DataFiles != nil {
		fmt.Fprintln(out, dataSummary(res.DataFiles))
	}
	if res.Server == nil {
		fmt.Fprintln(out, "(status unknown: add --server to ask the running server which versions it still uses)")
	}
	return nil
}

// age shows a duration in seconds as 3d4h, 5h12m, 7m3s or 40s.
func age(s int64) string {
	d := time.Duration(s) * time.Second
	switch {
	case s < 0:
		return "future"
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", s)
}
