// Package logtext makes text fit for one line of the server's error log:
// foreign text (KMS messages, panic values) with its control characters
// escaped and its length bounded, and the site of a recovered panic.
package logtext
