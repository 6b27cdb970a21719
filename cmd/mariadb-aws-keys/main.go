// Command mariadb-aws-keys lists, verifies and re-wraps the key files of
// MariaDB's aws_key_management plugin. See internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/mariadb-go/aws_key_management/internal/cli"
)

func main() {
	// Ctrl-C or SIGTERM stops the work between files; what was done
	// stays consistent (see rewrap).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, StderrTerminal: term.IsTerminal(int(os.Stderr.Fd()))}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		env.ReadPassword = func(prompt string) (string, error) {
			os.Stderr.WriteString(prompt)
			p, err := term.ReadPassword(int(os.Stdin.Fd()))
			os.Stderr.WriteString("\n")
			return string(p), err
		}
	}
	code := cli.Main(ctx, os.Args[1:], env)
	stop()
	os.Exit(code)
}
