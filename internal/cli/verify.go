package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/keyops"
)

func (a *app) verifyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "verify [DIR]",
		GroupID: groupKeyFiles,
		Short:   "Unwrap every key file and check its key: run it on a backup before trusting it",
		Long: `Unwrap every key file of DIR with KMS Decrypt (--parallel at a time, with a
progress bar on a terminal), and check that each key is 16 or 32 bytes long.
Each failure is reported with the file and the reason (a truncated or damaged
blob, a KMS key that is disabled or that the credentials may not use, a key of
the wrong length). Versions missing between others are warnings. Nothing is
written. The exit code is 1 if any file fails, or if a key version the data
files need has no key file. Needs kms:Decrypt on every KMS key the files are
wrapped under.
` + dataFilesHelp,
		Example: `  # the datadir of the option files
  mariadb-aws-keys verify
  # a restored backup, before starting a server on it
  mariadb-aws-keys verify /restore/datadir
  # the JSON report, 32 KMS calls at a time
  mariadb-aws-keys verify --json --parallel 32 /backup/keys > verify.json
  # a backup whose key files were copied apart (keyfile_dir outside the datadir)
  mariadb-aws-keys verify --datadir /backups/2026-12-01/full /backups/2026-12-01/keyfiles`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.verify(cmd.Context(), args) },
	}
	cmd.Flags().BoolVarP(&a.verbose, "verbose", "v", false, "show every key file, not only the failures")
	a.dataFilesFlag(cmd, false)
	return cmd
}

func (a *app) verify(ctx context.Context, args []string) error {
	s, err := a.settings(args)
	if err != nil {
		return err
	}
	dataDir, err := a.dataDir(s, !a.noDataFiles)
	if err != nil {
		return err
	}
	c, err := a.kmsClient(ctx, s)
	if err != nil {
		return err
	}
	r := a.runner()
	res, err := keyops.Verify(ctx, s.KeyDir, c, r)
	if err != nil {
		return usageError(err)
	}
	a.lockWarning(r)
	for _, k := range res.Keys {
		if !k.OK {
			a.warnf("FAILED %s", prefixFile(k.File, k.Error))
		}
	}
	for _, w := range res.Warnings {
		a.warnf("warning: %s", w)
	}
	dataFailed := 0
	if dataDir != "" && ctx.Err() == nil {
		entries := make([]keyfile.Entry, len(res.Keys))
		for i, k := range res.Keys {
			entries[i] = keyfile.Entry{ID: k.KeyID, Version: k.Version}
		}
		if res.DataFiles, dataFailed, err = a.checkData(ctx, dataDir, res.Directory, entries); err != nil {
			return err
		}
	}
	if a.json {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else {
		out := a.env.Stdout
		if a.verbose {
			for _, k := range res.Keys {
				if k.OK {
					fmt.Fprintf(out, "ok      %s  %d-byte key  %s\n", k.File, k.KeyBytes, k.CMK)
				} else {
					fmt.Fprintf(out, "FAILED  %s  %s\n", k.File, k.Error)
				}
			}
		}
		fmt.Fprintf(out, "verified %d key files in %s: %d ok, %d failed; %d KMS calls throttled and retried\n",
			res.Checked, res.Directory, res.OK, res.Failed, res.Throttled)
		if dc := res.DataFiles; dc != nil {
			if a.verbose {
				for _, u := range dc.Uses {
					fmt.Fprintf(out, "needed  %s  %s\n", keyfile.Name(u.KeyID, u.Version), usedBy(u))
				}
			}
			fmt.Fprintln(out, dataSummary(dc))
		}
	}
	if err := interrupted(ctx); err != nil {
		return err
	}
	if res.Failed > 0 || dataFailed > 0 {
		return errReported
	}
	return nil
}
