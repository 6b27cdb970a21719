package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mariadb-go/aws_key_management/internal/keyops"
	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
)

func (a *app) rewrapCommand() *cobra.Command {
	var o keyops.RewrapOptions
	cmd := &cobra.Command{
		Use:     "rewrap --to KEY [DIR]",
		GroupID: groupKeyFiles,
		Short:   "Re-wrap every key file under another KMS key (KMS ReEncrypt: the data keys never leave KMS)",
		Long: `Re-wrap every key file of DIR under the KMS key --to (key id, key ARN, alias/name
or alias ARN) with KMS ReEncrypt: the data keys stay the same and never leave
KMS, so no table is re-encrypted. Afterwards the old KMS key is no longer needed
by these files and can be disabled; the server still starts.

Per file: unwrap it (to learn its KMS key, and its key for the check); skip it
if it is already under --to; ReEncrypt; keep the old blob in a backup directory
(--backup-dir, default DIR/#sql-rewrap-backup-<UTC time>/, mode 0700: outside
the plugin's files, and not listed as a database by the server); replace the
file atomically (temporary file, fsync, rename, directory fsync; owner, group
and modification time kept, mode 0400); unwrap the new file and compare the
keys; then remove the backup. If the new file does not unwrap to the same
key, the old blob is put back.

Safe while the server runs: it reads a key file only to unwrap it, and sees
the old file or the new one. Safe to interrupt and run again: files already
under --to are skipped, and the backups an interrupted run left are checked
against the key files first (and removed, or put back). Set
aws_key_management_master_key_id to the new key first, so that new versions
are created under it.

--dry-run shows what would change and changes nothing. Needs kms:DescribeKey,
kms:ReEncryptTo and kms:Decrypt on the new key; kms:ReEncryptFrom and
kms:Decrypt on the old one.`,
		Example: `  # see what would change
  mariadb-aws-keys rewrap --dry-run --to alias/mariadb-2025
  # re-wrap the datadir's key files
  mariadb-aws-keys rewrap --to alias/mariadb-2025
  # a key directory of its own, backups elsewhere
  mariadb-aws-keys rewrap --to arn:aws:kms:eu-west-1:111122223333:key/1234abcd-... \
      --backup-dir /root/rewrap-backup /srv/mariadb-keys`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.rewrap(cmd.Context(), args, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.To, "to", "", "the KMS key to wrap every data key under: key id, key ARN, alias/name or alias ARN (required)")
	f.BoolVar(&o.DryRun, "dry-run", false, "show what would change, change nothing")
	f.StringVar(&o.BackupDir, "backup-dir", "", "where to keep old blobs until the new ones are checked (default DIR/#sql-rewrap-backup-<UTC time>/)")
	f.BoolVarP(&a.verbose, "verbose", "v", false, "show every key file, not only the failures")
	cmd.MarkFlagRequired("to")
	return cmd
}

func (a *app) rewrap(ctx context.Context, args []string, o keyops.RewrapOptions) error {
	if strings.TrimSpace(o.To) == "" {
		return usageError(errors.New("--to is empty: give the KMS key to re-wrap under (key id, key ARN, alias/name or alias ARN)"))
	}
	s, err := a.settings(args)
	if err != nil {
		return err
	}
	c, err := a.kmsClient(ctx, s)
	if err != nil {
		return err
	}
	o.Runner = a.runner()
	res, err := keyops.Rewrap(ctx, s.KeyDir, c, o)
	if err != nil {
		return usageError(err)
	}
	a.lockWarning(o.Runner)
	for _, lo := range res.Leftovers {
		a.warnf("leftover of an interrupted run: %s: %s: %s", lo.Backup, lo.Action, lo.Note)
	}
	for _, k := range res.Keys {
		if k.Action == keyops.ActionFailed {
			a.warnf("FAILED %s", prefixFile(k.File, k.Error))
		}
	}
	if res.Failed == 0 && !o.DryRun {
		a.masterKeyWarning(ctx, c, s.MasterKeyID, res.TargetARN)
	}
	for _, w := range res.Warnings {
		a.warnf("warning: %s", w)
	}
	if a.json {
		err = a.printJSON(res)
	} else {
		err = a.printRewrap(res)
	}
	if err != nil {
		return err
	}
	if err := interrupted(ctx); err != nil {
		return err
	}
	if res.Failed > 0 {
		if res.BackupDir != "" {
			a.warnf("%d key file(s) not re-wrapped; old blobs that could not be settled are kept in %s; fix the cause and run rewrap again", res.Failed, res.BackupDir)
		}
		return errReported
	}
	return nil
}

// masterKeyWarning says when new versions will still be wrapped under
// another key than the one just re-wrapped to.
func (a *app) masterKeyWarning(ctx context.Context, c *kmsbackend.Client, master, target string) {
	if master == "" {
		return
	}
	info, err := c.DescribeKey(ctx, master)
	switch {
	case err != nil:
		a.warnf("warning: aws_key_management_master_key_id = %s (option files) could not be resolved: %v", master, err)
	case info.ARN != target:
		a.warnf("warning: aws_key_management_master_key_id = %s (option files) is %s: new key versions will still be wrapped under it; set it to the new key (SET GLOBAL and the option file) and run rewrap again", master, info.ARN)
	}
}

func (a *app) printRewrap(res *keyops.RewrapResult) error {
	out := a.env.Stdout
	if a.verbose || res.DryRun {
		for _, k := range res.Keys {
			switch k.Action {
			case keyops.ActionFailed:
				fmt.Fprintf(out, "%-12s  %s  %s\n", k.Action, k.File, k.Error)
			default:
				fmt.Fprintf(out, "%-12s  %s  %s -> %s\n", k.Action, k.File, k.From, k.To)
			}
		}
	}
	if res.DryRun {
		fmt.Fprintf(out, "dry run, nothing changed: %d of %d key files in %s would be re-wrapped under %s, %d are already, %d cannot be\n",
			res.WouldRewrap, len(res.Keys), res.Directory, res.TargetARN, res.Skipped, res.Failed)
		return nil
	}
	fmt.Fprintf(out, "re-wrapped %d key files in %s under %s: %d were already, %d failed; %d KMS calls throttled and retried\n",
		res.Rewrapped, res.Directory, res.TargetARN, res.Skipped, res.Failed, res.Throttled)
	if res.Failed == 0 && len(res.NewFiles) == 0 {
		old := map[string]bool{}
		for _, k := range res.Keys {
			if k.From != "" && k.From != res.TargetARN {
				old[k.From] = true
			}
		}
		var keys []string
		for k := range old {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(out, "no key file here is wrapped under %s any more (backups made before may still be)\n", k)
		}
	}
	return nil
}
