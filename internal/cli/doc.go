// Package cli is the command line of mariadb-aws-keys: the commands, their
// flags and help, and how results are shown (a table, or JSON with
// --json) and end (exit codes). The work is done by keyops, keyusage and
// toolconfig; cmd/mariadb-aws-keys only calls Main.
package cli
