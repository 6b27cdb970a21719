// Package keyops is the work of the operator tool (cmd/mariadb-aws-keys)
// on a directory of key files: list them, verify that every one unwraps,
// and re-wrap them under another KMS key, with bounded parallelism, a
// shared backoff when KMS throttles, plaintext keys only in locked memory,
// and results as plain values for a table or JSON. It uses the plugin's
// own key-file store and KMS client, so it reads every file the plugin
// (or the C++ plugin, or the AWS CLI) writes.
package keyops
