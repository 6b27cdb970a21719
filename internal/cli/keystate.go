package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/spf13/cobra"

	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
	"github.com/mariadb-go/aws_key_management/internal/kmserr"
	"github.com/mariadb-go/aws_key_management/internal/mfawrapper"
	"github.com/mariadb-go/aws_key_management/internal/toolconfig"
)

// keyStateFlags are the flags of enable-key and disable-key.
type keyStateFlags struct {
	keyID, mfaSerial, mfaCode string
}

// keyStateResult is what enable-key and disable-key print with --json.
type keyStateResult struct {
	Action string `json:"action"` // "enable" or "disable"
	KeyID  string `json:"key_id"` // as given
	Arn    string `json:"arn,omitempty"`
	// State is DescribeKey's KeyState after the change ("" if the
	// credentials may not call DescribeKey).
	State string `json:"state,omitempty"`
	// MFASessionExpires is when the MFA session credentials used end.
	MFASessionExpires *time.Time `json:"mfa_session_expires,omitempty"`
}

func (a *app) enableKeyCommand() *cobra.Command  { return a.keyStateCommand(true) }
func (a *app) disableKeyCommand() *cobra.Command { return a.keyStateCommand(false) }

func (a *app) keyStateCommand(enable bool) *cobra.Command {
	var f keyStateFlags
	name, verb, effect := "disable-key", "Disable", "the server can no longer unwrap its keys at start, nor create new ones (keys it has loaded keep working)"
	if enable {
		name, verb, effect = "enable-key", "Enable", "the server can unwrap its keys and create new ones"
	}
	cmd := &cobra.Command{
		Use:     name + " [--key-id KEY] [--mfa-serial ARN --mfa-code CODE]",
		GroupID: groupKMSKeys,
		Short:   verb + " the KMS master key (the guide's kms-manage-key), with MFA if asked",
		Long: verb + ` the KMS master key: ` + effect + `. The key is --key-id (key id,
key ARN or alias), else aws_key_management_master_key_id of the option files.
With a key ARN and no --region, the region is the ARN's.

With --mfa-serial and --mfa-code the tool first gets STS session credentials
(GetSessionToken, 900 s) with that MFA device and code, as the guide's
kms-manage-key script does, and makes the KMS calls with them: for a key policy
that lets a key administrator enable and disable the key only with MFA. The
AWS credentials, profile (AWS_PROFILE) and STS endpoint come from the SDK's
standard configuration.

Afterwards it shows the key's state (DescribeKey; if the credentials may not
call it, a warning says so and the change still counts). Needs kms:` + verb + `Key.
Exit codes: 0 done; 1 KMS or STS refused; 2 bad command line or settings.`,
		Example: `  # the guide's workflow: a key administrator (profile MDBEncAdmin) with MFA
  AWS_PROFILE=MDBEncAdmin mariadb-aws-keys ` + name + ` \
      --key-id arn:aws:kms:us-east-1:111122223333:key/abcdf8f6-084b-4cff-99ca-abcdef6c7907 \
      --mfa-serial arn:aws:iam::111122223333:mfa/MDBEncAdmin --mfa-code 575290
  # the master key of the option files, for a script
  mariadb-aws-keys ` + name + ` --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.setKeyState(cmd.Context(), f, enable) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.keyID, "key-id", "", "the KMS key (default: aws_key_management_master_key_id of the option files)")
	fl.StringVar(&f.mfaSerial, "mfa-serial", "", "MFA device ARN (or serial): get STS session credentials with it first")
	fl.StringVar(&f.mfaCode, "mfa-code", "", "the six-digit code the MFA device shows (with --mfa-serial)")
	return cmd
}

func (a *app) setKeyState(ctx context.Context, f keyStateFlags, enable bool) error {
	if (f.mfaSerial == "") != (f.mfaCode == "") {
		return usageError(errors.New("--mfa-serial and --mfa-code go together: give both (MFA session credentials) or neither (the credentials as configured)"))
	}
	if f.mfaCode != "" && !mfawrapper.ValidCode(f.mfaCode) {
		return usageError(fmt.Errorf("--mfa-code: want the six digits the MFA device shows, got %d characters", len(f.mfaCode)))
	}
	s, err := toolconfig.Resolve(a.flags, a.env.Getenv, a.env.Home)
	if err != nil {
		return usageError(err)
	}
	keyID := f.keyID
	if keyID == "" {
		keyID = s.MasterKeyID
	}
	if keyID == "" {
		return usageError(errors.New("no KMS key: give --key-id, or set aws_key_management_master_key_id in the option files (--defaults-file)"))
	}
	if a.flags.Region == "" {
		if r := arnRegion(keyID); r != "" {
			s.KMS.Region = r
		}
	}
	res := keyStateResult{Action: "disable", KeyID: keyID}
	if enable {
		res.Action = "enable"
	}
	if f.mfaSerial != "" {
		// The same credentials file as the KMS calls (the plugin's
		// rules: AWS_CREDENTIAL_PROFILES_FILE and the datadir too).
		var opts []func(*config.LoadOptions) error
		if file, why := kmsbackend.CredentialsFile(a.env.Getenv, s.DataDir); file != "" && why != "AWS_SHARED_CREDENTIALS_FILE" {
			opts = append(opts, config.WithSharedCredentialsFiles([]string{file}))
		}
		if s.KMS.Region != "" {
			opts = append(opts, config.WithRegion(s.KMS.Region))
		}
		api, err := mfawrapper.NewSTS(ctx, opts...)
		if err != nil {
			return usageError(err)
		}
		sess, err := mfawrapper.GetSession(ctx, api, f.mfaSerial, f.mfaCode, mfawrapper.DefaultSessionDuration)
		if err != nil {
			return err
		}
		s.KMS.Credentials = credentials.NewStaticCredentialsProvider(sess.AccessKeyID, sess.SecretAccessKey, sess.SessionToken)
		res.MFASessionExpires = &sess.Expires
	}
	c, err := a.kmsClient(ctx, s)
	if err != nil {
		return err
	}
	target := keyID
	if isAlias(keyID) {
		// EnableKey and DisableKey take no alias: resolve it first.
		info, err := c.DescribeKey(ctx, keyID)
		if err != nil {
			return fmt.Errorf("resolving alias %s: %w (give the key id or ARN with --key-id if the credentials may not call DescribeKey)", keyID, err)
		}
		target = info.ARN
	}
	if err := c.SetKeyEnabled(ctx, target, enable); err != nil {
		return fmt.Errorf("%s key %s: %w", res.Action, keyID, err)
	}
	info, err := c.DescribeKey(ctx, target)
	var ke *kmserr.Error
	switch {
	case err == nil:
		res.Arn, res.State = info.ARN, info.State
	case errors.As(err, &ke) && strings.Contains(ke.Code, "AccessDenied"):
		a.warnf("warning: key %s: %sd, but its state cannot be shown: the credentials may not call kms:DescribeKey", keyID, res.Action)
	default:
		a.warnf("warning: key %s: %sd, but reading its state failed: %v", keyID, res.Action, err)
	}
	if a.json {
		return a.printJSON(res)
	}
	state := res.State
	if state == "" {
		state = "(unknown)"
	}
	shown := res.Arn
	if shown == "" {
		shown = keyID
	}
	fmt.Fprintf(a.env.Stdout, "%s: %s\n", shown, state)
	if res.MFASessionExpires != nil {
		fmt.Fprintf(a.env.Stdout, "MFA session credentials used; they expire at %s\n", res.MFASessionExpires.UTC().Format(time.RFC3339))
	}
	return nil
}

// arnRegion is the region of a KMS key or alias ARN, "" for other names.
func arnRegion(id string) string {
	parts := strings.SplitN(id, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "kms" {
		return parts[3]
	}
	return ""
}

func isAlias(id string) bool {
	if strings.HasPrefix(id, "alias/") {
		return true
	}
	parts := strings.SplitN(id, ":", 6)
	return len(parts) == 6 && strings.HasPrefix(parts[5], "alias/")
}
