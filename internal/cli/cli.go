package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mariadb-go/aws_key_management/internal/buildinfo"
	"github.com/mariadb-go/aws_key_management/internal/keyops"
	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
	"github.com/mariadb-go/aws_key_management/internal/toolconfig"
)

// Name is the tool's name, the prefix of its messages.
const Name = "mariadb-aws-keys"

// Exit codes.
const (
	// ExitOK: the command did all it was asked, and every key file is
	// fine.
	ExitOK = 0
	// ExitFailed: the command ran, and something failed: a key file that
	// does not unwrap, one not re-wrapped, the server could not be
	// asked, the run was interrupted.
	ExitFailed = 1
	// ExitUsage: nothing was done: a bad command line, option file or
	// setting, or a directory that is not a key directory, or a --to key
	// that cannot be used.
	ExitUsage = 2
)

// Env is the world the command line runs in.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Home replaces "~" in the default option files ("" means $HOME).
	Home string
	// StderrTerminal: show a progress bar on Stderr.
	StderrTerminal bool
	// ReadPassword prompts for --password given without a value; nil
	// means there is no terminal to ask on.
	ReadPassword func(prompt string) (string, error)
}

// exitError carries an exit code other than ExitFailed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(err error) error { return &exitError{ExitUsage, err} }

// errReported: the command has already said what failed (per key file,
// on stderr); only the exit code is left.
var errReported = errors.New("failures reported above")

// Main runs the command line args and returns the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	a := &app{env: env}
	root := a.rootCommand()
	root.SetArgs(passwordArgs(args))
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitFailed
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else if isUsage(err) {
		code = ExitUsage
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintf(env.Stderr, "%s: %v\n", Name, err)
		if code == ExitUsage && isUsage(err) {
			fmt.Fprintf(env.Stderr, "Run '%s --help' for usage.\n", Name)
		}
	}
	return code
}

// passwordArgs rewrites -pSECRET, the MariaDB clients' way of giving a
// password, as --password=SECRET: a bare -p asks (NoOptDefVal), so the
// flag parser would take the rest for more short flags.
func passwordArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) > 2 && strings.HasPrefix(a, "-p") && a[2] != '=' {
			out[i] = "--password=" + a[2:]
		}
	}
	return out
}

// isUsage tells cobra's own errors about the command line (unknown flag,
// missing argument) from the commands' errors.
func isUsage(err error) bool {
	var ee *exitError
	if errors.As(err, &ee) {
		return false
	}
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument",
		"accepts at most", "accepts between", "requires at least", "required flag", "bad flag syntax"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// app holds the flags of one run.
type app struct {
	env   Env
	flags toolconfig.Flags
	// Output and behaviour.
	json       bool
	parallel   int
	logLevel   string
	noProgress bool
	verbose    bool
	// noDataFiles: verify does not read the data files; dataFiles: list
	// does.
	noDataFiles, dataFiles bool
}

// Command groups of the help.
const (
	groupKeyFiles = "key-files"
	groupKMSKeys  = "kms-keys"
)

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   Name + " <command> [flags]",
		Short: "List, verify, re-wrap and export the key files of MariaDB's aws_key_management plugin",
		Long: `mariadb-aws-keys works on the key files of the aws_key_management plugin
(aws-kms-key.<id>.<version>: a data key wrapped by AWS KMS), with the plugin's
own key-file and KMS code: it reads every file the plugin, MariaDB's C++ plugin
or the AWS CLI writes.

Settings come from the same places as the plugin's: the server's option files
(/etc/my.cnf, /etc/mysql/my.cnf, ~/.my.cnf and what they include, or
--defaults-file; groups [mysqld], [server], [mariadb], [mariadbd] and their
versioned forms): datadir, aws_key_management_keyfile_dir, _region,
_endpoint_url, _request_timeout and _master_key_id. Flags override them. AWS
credentials come from the plugin's chain: the environment, AWS_PROFILE, the
credentials file (AWS_SHARED_CREDENTIALS_FILE, AWS_CREDENTIAL_PROFILES_FILE,
~/.aws/credentials, <datadir>/.aws/credentials), web identity, the
container or the instance role.

Output: a table on stdout; with --json one JSON document (see the README,
"Operations", for its fields). Messages, warnings and errors go to stderr, and
a progress bar too when stderr is a terminal.

Exit codes: 0 success; 1 the command ran and something failed (a key that does
not unwrap, a file not re-wrapped, an interruption); 2 nothing was done (bad
command line or settings, not a key directory, an unusable --to key).`,
		Version:           buildinfo.String(),
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.AddGroup(&cobra.Group{ID: groupKeyFiles, Title: "Key files:"})
	root.SetHelpCommandGroupID(groupKeyFiles)
	pf := root.PersistentFlags()
	pf.StringVar(&a.flags.DefaultsFile, "defaults-file", "", "read only this option file")
	pf.StringVar(&a.flags.DefaultsExtraFile, "defaults-extra-file", "", "read this option file after the others")
	pf.BoolVar(&a.flags.NoDefaults, "no-defaults", false, "read no option file")
	pf.StringVar(&a.flags.KeyfileDir, "keyfile-dir", "", "directory of the key files (default: aws_key_management_keyfile_dir, else the datadir)")
	pf.StringVar(&a.flags.DataDir, "datadir", "", "the server's datadir (default: datadir of the option files)")
	pf.StringVar(&a.flags.Region, "region", "", "AWS region (default: aws_key_management_region, then the SDK's configuration, then us-east-1)")
	pf.StringVar(&a.flags.EndpointURL, "endpoint-url", "", "KMS endpoint (default: aws_key_management_endpoint_url); http:// only to a loopback address")
	pf.StringVar(&a.flags.RequestTimeout, "request-timeout", "", "bound of each KMS attempt, milliseconds or a duration like 2s (default: aws_key_management_request_timeout, else 10s)")
	pf.BoolVar(&a.json, "json", false, "print one JSON document instead of a table")
	pf.IntVar(&a.parallel, "parallel", keyops.DefaultParallel, "KMS calls in flight at most")
	pf.StringVar(&a.logLevel, "log-level", "Off", "log KMS requests to stderr, as aws_key_management_log_level: Off, Error, Warn, Info, Debug, Trace")
	pf.BoolVar(&a.noProgress, "no-progress", false, "no progress bar, even on a terminal")
	root.AddCommand(a.listCommand(), a.verifyCommand(), a.rewrapCommand())
	root.AddGroup(&cobra.Group{ID: groupRecovery, Title: "Recovery without KMS:"})
	root.AddCommand(a.keygenCommand(), a.exportCommand(), a.importCommand())
	root.AddGroup(&cobra.Group{ID: groupKMSKeys, Title: "KMS keys:"})
	root.AddCommand(a.enableKeyCommand(), a.disableKeyCommand())
	return root
}

// settings resolves the configuration with the positional DIR, if any,
// and checks that the key directory is one.
func (a *app) settings(args []string) (toolconfig.Settings, error) {
	s, err := a.resolve(args)
	if err != nil {
		return s, err
	}
	if _, _, err := keyops.OpenDir(s.KeyDir); err != nil {
		return s, usageError(fmt.Errorf("%v (key directory from %s)", err, s.KeyDirFrom))
	}
	return s, nil
}

// resolve is settings without the check that the key directory holds key
// files (import writes into an empty one).
func (a *app) resolve(args []string) (toolconfig.Settings, error) {
	if len(args) > 0 {
		a.flags.Dir = args[0]
	}
	if a.parallel < 1 || a.parallel > 256 {
		return toolconfig.Settings{}, usageError(fmt.Errorf("--parallel %d: want 1 to 256", a.parallel))
	}
	s, err := toolconfig.Resolve(a.flags, a.env.Getenv, a.env.Home)
	if err != nil {
		return s, usageError(err)
	}
	if s.KeyDir == "" {
		return s, usageError(errors.New("no key directory: give DIR, --keyfile-dir or --datadir (or datadir in the option files, --defaults-file)"))
	}
	return s, nil
}

// kmsClient builds the plugin's KMS client from the settings.
func (a *app) kmsClient(ctx context.Context, s toolconfig.Settings) (*kmsbackend.Client, error) {
	level, ok := parseLevel(a.logLevel)
	if !ok {
		return nil, usageError(fmt.Errorf("--log-level %q: want Off, Error, Warn, Info, Debug or Trace", a.logLevel))
	}
	cfg := s.KMS
	cfg.Getenv = a.env.Getenv
	cfg.Log = &kmsbackend.Logger{
		Level: func() kmsbackend.LogLevel { return level },
		Print: func(_ kmsbackend.LogLevel, msg string) { a.warnf("%s", msg) },
	}
	c, err := kmsbackend.New(ctx, cfg)
	if err != nil {
		return nil, usageError(fmt.Errorf("setting up the KMS client: %w", err))
	}
	if level >= kmsbackend.LogInfo {
		a.warnf("%s", c.Description)
	}
	for _, w := range c.Warnings {
		a.warnf("warning: %s", w)
	}
	return c, nil
}

func parseLevel(s string) (kmsbackend.LogLevel, bool) {
	for l := kmsbackend.LogOff; l <= kmsbackend.LogTrace; l++ {
		if strings.EqualFold(s, l.String()) {
			return l, true
		}
	}
	return 0, false
}

// runner makes the keyops runner of one command.
func (a *app) runner() *keyops.Runner {
	r := &keyops.Runner{Parallel: a.parallel}
	if a.env.StderrTerminal && !a.noProgress {
		r.NewProgress = func(total int, what string) keyops.Progress { return newBar(a.env.Stderr, total, what) }
	}
	return r
}

// warnf writes a message to stderr.
func (a *app) warnf(format string, args ...any) {
	fmt.Fprintf(a.env.Stderr, Name+": "+format+"\n", args...)
}

// printJSON writes v as one indented JSON document on stdout.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// lockWarning says once if keys could not be kept in locked memory.
func (a *app) lockWarning(r *keyops.Runner) {
	if r.LockError != nil {
		a.warnf("warning: plaintext keys could not be locked in memory (%v): they may reach swap; raise RLIMIT_MEMLOCK (ulimit -l)", r.LockError)
	}
}

// interrupted turns a cancelled run into its message.
func interrupted(ctx context.Context) error {
	if ctx.Err() != nil {
		return errors.New("interrupted: run the command again to finish")
	}
	return nil
}
