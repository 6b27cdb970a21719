// Package keyusage finds out which key versions a MariaDB server still
// needs: InnoDB's tablespaces (information_schema), the redo log's and
// each binary log's key version (their file headers, read by
// internal/datafiles), and temporary files; and from that,
// conservatively, which versions are in use, the latest, kept because
// their use cannot be ruled out, or no longer needed (safe to archive).
package keyusage
