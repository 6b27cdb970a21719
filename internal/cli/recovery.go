package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	agelib "filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/mariadb-go/aws_key_management/internal/keyops"
	"github.com/mariadb-go/aws_key_management/internal/recovery"
)

// groupRecovery: the commands of recovery without KMS.
const groupRecovery = "recovery"

func (a *app) keygenCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "keygen --output FILE",
		GroupID: groupRecovery,
		Short:   "Make a recovery key (an age X25519 identity) for export",
		Long: `Write a new recovery key to FILE (mode 0600; an existing file is never
replaced) and print its public part (age1...) on stdout: give that to export
with --recipient. The file is an age identity file, as age-keygen writes it:
the age tool and any age implementation read it.

Keep the file apart from the server and its backups (offline, in a vault, on
paper): whoever holds it and a bundle holds every data key of the bundle.`,
		Example: `  mariadb-aws-keys keygen --output /secure/mariadb-recovery.key
  # age1... : the recipient for export`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return usageError(errors.New("give --output FILE: where to write the recovery key"))
			}
			id, err := agelib.GenerateX25519Identity()
			if err != nil {
				return fmt.Errorf("making a recovery key: %w", err)
			}
			f, err := os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return usageError(fmt.Errorf("writing the recovery key: %w", err))
			}
			_, err = fmt.Fprintf(f, "# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(output)
				return fmt.Errorf("writing the recovery key %s: %w", output, err)
			}
			fmt.Fprintln(a.env.Stdout, id.Recipient())
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "the file to write the recovery key to (mode 0600; never replaced)")
	return cmd
}

func (a *app) exportCommand() *cobra.Command {
	var (
		recipients     []string
		recipientFiles []string
		output         string
		replace        bool
	)
	cmd := &cobra.Command{
		Use:     "export --recipient age1... --output FILE [DIR]",
		GroupID: groupRecovery,
		Short:   "Seal every key version into a recovery bundle, to read the data on a host with no KMS",
		Long: `Unwrap every key file of DIR (KMS Decrypt, --parallel at a time) and seal all
the key versions, each with its key file's blob, into one recovery bundle for
the recovery keys given (age recipients: --recipient age1..., or files of them
with --recipients-file; make one with keygen). Nothing is written unless every
key file unwraps: a bundle missing a version could not read the data encrypted
with it. The bundle is written to a temporary file, fsync'ed and renamed to
--output (mode 0600); an existing --output is replaced only with --replace. The
plaintext keys never reach the disk: they are in locked memory until sealed.

Use the bundle with the plugin's recovery mode (aws_key_management_recovery_bundle
and _recovery_identity: the server reads the keys from it and calls no KMS), or
import it into another KMS key (import --to). Make a new bundle after each
rotation: versions made later are not in it. Needs kms:Decrypt.`,
		Example: `  mariadb-aws-keys keygen --output /secure/recovery.key      # once; prints age1...
  mariadb-aws-keys export --recipient age1qyqszqgp... --output /backup/keys-2026-12-01.age
  # a backup's key files, for two recovery keys
  mariadb-aws-keys export --recipients-file /etc/mysql/recovery-recipients.txt \
      --output /backup/2026-12-01/keys.age /backup/2026-12-01`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.export(cmd.Context(), args, recipients, recipientFiles, output, replace)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&recipients, "recipient", "r", nil, "a recovery key's public part (age1...); repeat for more")
	f.StringArrayVarP(&recipientFiles, "recipients-file", "R", nil, "a file of recipients, one per line (# comments); repeat for more")
	f.StringVarP(&output, "output", "o", "", "the bundle file to write (required)")
	f.BoolVar(&replace, "replace", false, "write over an existing --output")
	cmd.MarkFlagRequired("output")
	return cmd
}

func (a *app) export(ctx context.Context, args, recipients, recipientFiles []string, output string, replace bool) error {
	rs, err := parseRecipients(recipients, recipientFiles)
	if err != nil {
		return usageError(err)
	}
	s, err := a.settings(args)
	if err != nil {
		return err
	}
	c, err := a.kmsClient(ctx, s)
	if err != nil {
		return err
	}
	r := a.runner()
	res, err := keyops.Export(ctx, s.KeyDir, c, r, rs, output, replace, keyops.NewMeta(s.KeyDir, time.Now()))
	if res == nil && err != nil {
		return usageError(err)
	}
	a.lockWarning(r)
	for _, f := range res.Failed {
		a.warnf("FAILED %s", prefixFile(f.File, f.Error))
	}
	if a.json {
		if jerr := a.printJSON(res); jerr != nil {
			return jerr
		}
	}
	if err != nil {
		return err
	}
	if ierr := interrupted(ctx); ierr != nil {
		return ierr
	}
	if len(res.Failed) > 0 {
		a.warnf("no bundle written: %d of %d key files could not be unwrapped", len(res.Failed), len(res.Failed)+res.Versions)
		return errReported
	}
	if !a.json {
		fmt.Fprintf(a.env.Stdout, "sealed %d key versions of %s into %s for %d recipient(s); %d KMS calls throttled and retried\n",
			res.Versions, res.Directory, res.Output, res.Recipients, res.Throttled)
	}
	return nil
}

// parseRecipients reads age recipients from the flags and files.
func parseRecipients(list, files []string) ([]agelib.Recipient, error) {
	var out []agelib.Recipient
	for _, r := range list {
		rec, err := agelib.ParseX25519Recipient(strings.TrimSpace(r))
		if err != nil {
			return nil, fmt.Errorf("--recipient %q: %w (want the age1... line keygen printed)", r, err)
		}
		out = append(out, rec)
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("--recipients-file: %w", err)
		}
		rs, err := agelib.ParseRecipients(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--recipients-file %s: %w", name, err)
		}
		out = append(out, rs...)
	}
	if len(out) == 0 {
		return nil, errors.New("no recipient: give --recipient age1... or --recipients-file (make a recovery key with keygen)")
	}
	return out, nil
}

func (a *app) importCommand() *cobra.Command {
	var bundle, identity, to string
	cmd := &cobra.Command{
		Use:     "import --bundle FILE --identity FILE [--to KEY] [DIR]",
		GroupID: groupRecovery,
		Short:   "Write the key files of a recovery bundle back, or wrapped under another KMS key",
		Long: `Open a recovery bundle (made by export) with its recovery key (--identity) and
write its key versions as key files of DIR (default: the key directory of the
settings), which must exist:

  without --to  the bundle's own blobs, as they were: key files that were lost,
                for a server that can still use their KMS key;
  with --to     each key wrapped under the KMS key --to (KMS Encrypt), e.g. in
                another account or region than the bundle's; each new file is
                proven to unwrap to the bundle's key before it is written.

Existing key files are never replaced: one that holds the bundle's blob (or,
with --to, unwraps to the bundle's key) counts as present; any other is a
failure, named. Needs kms:Encrypt and kms:Decrypt on --to.

The key passes through the AWS SDK's request buffers for Encrypt (not wiped):
run it on a host you trust, as for the bundle itself.`,
		Example: `  # restore lost key files into a restored datadir
  mariadb-aws-keys import --bundle /backup/keys.age --identity /secure/recovery.key /var/lib/mysql
  # re-home every key under a KMS key of another account or region
  AWS_PROFILE=dr mariadb-aws-keys import --region eu-west-1 --to alias/mariadb-dr \
      --bundle /backup/keys.age --identity /secure/recovery.key /var/lib/mysql`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.importBundle(cmd.Context(), args, bundle, identity, to)
		},
	}
	f := cmd.Flags()
	f.StringVar(&bundle, "bundle", "", "the recovery bundle (made by export; required)")
	f.StringVar(&identity, "identity", "", "the recovery key that opens it (made by keygen; required)")
	f.StringVar(&to, "to", "", "wrap every key under this KMS key (key id, ARN, alias/name or alias ARN) instead of writing the bundle's blobs")
	cmd.MarkFlagRequired("bundle")
	cmd.MarkFlagRequired("identity")
	return cmd
}

func (a *app) importBundle(ctx context.Context, args []string, bundle, identity, to string) error {
	s, err := a.resolve(args)
	if err != nil {
		return err
	}
	b, err := recovery.OpenFiles(bundle, identity)
	if err != nil {
		return usageError(err)
	}
	defer b.Close()
	c, err := a.kmsClient(ctx, s)
	if err != nil {
		return err
	}
	r := a.runner()
	res, err := keyops.Import(ctx, b, s.KeyDir, c, keyops.ImportOptions{To: to, Runner: r})
	if err != nil {
		return usageError(err)
	}
	for _, k := range res.Keys {
		if k.Action == "failed" {
			a.warnf("FAILED %s", prefixFile(k.File, k.Error))
		}
	}
	if a.json {
		if err := a.printJSON(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.env.Stdout, "imported %d key versions of %s (made %s on %s from %s) into %s: %d written, %d already present, %d failed\n",
			len(res.Keys), bundle, b.Created.Format(time.RFC3339), b.Host, b.Source, res.Directory, res.Written, res.Present, res.Failed)
	}
	if err := interrupted(ctx); err != nil {
		return err
	}
	if res.Failed > 0 {
		return errReported
	}
	return nil
}
