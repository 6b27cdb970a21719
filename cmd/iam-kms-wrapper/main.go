// Command iam-kms-wrapper starts a program (the MariaDB server) with AWS
// session credentials that need an MFA code: the drop-in replacement of
// the example in MariaDB's AWS KMS plugin guide, with the same command
// line and config file. See internal/mfawrapper.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/mariadb-go/aws_key_management/internal/buildinfo"
	"github.com/mariadb-go/aws_key_management/internal/mfawrapper"
)

const usage = `Usage: iam-kms-wrapper --config=FILE COMMAND [ARGS...]
       iam-kms-wrapper --version

Waits for an MFA code written to a FIFO, trades it for AWS STS session
credentials (GetSessionToken) and execs COMMAND with them in its
environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
and AWS_CREDENTIAL_EXPIRATION (RFC 3339; the plugin logs it at start).

FILE (MariaDB option-file syntax):
  [kms]
  kms_mfa_id = arn:aws:iam::111122223333:mfa/dba   # the MFA device (required)
  kms_mfa_socket = /run/mysqld/kms_mfa_socket      # the FIFO (required, absolute)
  kms_mfa_socket_group = dba     # optional: that group may write it too (mode 0620; default 0600)
  kms_mfa_timeout = 300          # optional: seconds to wait for the code
  kms_session_duration = 900     # optional: seconds, 900 to 129600

The wrapper's own credentials, region and STS endpoint come from the AWS
SDK's standard configuration (AWS_ACCESS_KEY_ID..., AWS_PROFILE,
~/.aws/credentials, AWS_REGION, AWS_ENDPOINT_URL_STS).

Examples:
  iam-kms-wrapper --config=/etc/mysql/iam-kms-wrapper.config /usr/sbin/mariadbd $MYSQLD_OPTS
  # then, from another terminal, as root or the FIFO's owner:
  echo 123456 > /run/mysqld/kms_mfa_socket
  iam-kms-wrapper --version      # which build this is

A systemd drop-in that starts mariadb.service through the wrapper, and an
example config: aws-key-management-mfa.conf and iam-kms-wrapper.config in
/usr/share/doc/aws-key-management/examples/ (the Debian package) or
support-files/systemd/ (the source).

Exit status: the command's own once it runs; 1 if anything before that
fails (the FIFO is removed and the command is not started); 2 for a
usage or config error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("iam-kms-wrapper", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", "", "")
	version := fs.Bool("version", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "iam-kms-wrapper: %v\n\n%s", err, usage)
		return 2
	}
	if *version {
		// As mariadb-aws-keys --version prints it (cobra's template).
		fmt.Fprintf(stdout, "iam-kms-wrapper version %s\n", buildinfo.String())
		return 0
	}
	if fs.NArg() < 1 {
		fmt.Fprintf(stderr, "iam-kms-wrapper: no command to start: give it after the options, e.g. /usr/sbin/mariadbd\n\n%s", usage)
		return 2
	}
	cfg, err := mfawrapper.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "iam-kms-wrapper: %v\n", err)
		return 2
	}
	path, err := exec.LookPath(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "iam-kms-wrapper: command %s: %v\n", fs.Arg(0), err)
		return 2
	}
	// A signal while waiting (systemctl stop, Ctrl-C) ends the wait; the
	// FIFO is removed and the error names the signal.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() { cancel(fmt.Errorf("stopped by signal %v", <-sigs)) }()
	api, err := mfawrapper.NewSTS(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "iam-kms-wrapper: %v\n", err)
		return 1
	}
	logf := func(msg string) { fmt.Fprintf(stderr, "iam-kms-wrapper: %s\n", msg) }
	env, err := mfawrapper.Prepare(ctx, cfg, api, os.Environ(), logf)
	if err != nil {
		fmt.Fprintf(stderr, "iam-kms-wrapper: %v; %s not started\n", err, path)
		return 1
	}
	signal.Stop(sigs) // the server sets up its own handlers
	err = syscall.Exec(path, fs.Args(), env)
	fmt.Fprintf(stderr, "iam-kms-wrapper: starting %s: %v\n", path, err)
	return 1
}
