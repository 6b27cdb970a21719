// Package mfawrapper is the work of iam-kms-wrapper: it reads the
// wrapper's config file, takes a six-digit MFA code from a FIFO that only
// the right users can write, trades it for STS session credentials and
// builds the environment the database server is exec'd with. It never
// execs anything itself, so every step is testable in-process.
package mfawrapper
