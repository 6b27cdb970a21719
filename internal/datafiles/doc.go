// Package datafiles reads MariaDB's data files offline, without a server,
// for the (key id, key version) pairs they need: InnoDB tablespaces (page
// 0's encryption header and each page's key version), Aria tables (the
// .MAI header and each page's key version), the redo log header and the start of each binary log.
package datafiles
