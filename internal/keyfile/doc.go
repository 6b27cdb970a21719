// Package keyfile is the on-disk store of wrapped data keys: one file per
// key version, named aws-kms-key.<id>.<version>, holding the raw KMS
// CiphertextBlob with no header, exactly as MariaDB's C++ plugin writes it.
//
// Files are created crash-safely (temporary file, fsync, link into place
// without ever replacing an existing version, fsync of the directory) and
// readable by their owner only. Only the operator tool replaces a version
// (Replace: same content for the server, the data key re-wrapped), with
// rename(2), so that a reader sees the old file or the new one. Reads check type and size so a damaged file
// is reported with its name and the reason instead of being half-read.
package keyfile
