// Package cabi is the C side of MariaDB's plugin ABI and the only package
// that imports "C". plugin.c declares the plugin, its system variables and
// the st_mariadb_encryption table; exports.go holds the //export shims the
// C callbacks call. The logic lives behind the Plugin interface, which the
// main package registers.
//
// Threading: the server calls the key functions from many threads at
// once; each shim runs on the calling server thread. Sysvar update shims
// run with the server's LOCK_global_system_variables held.
//
// Memory: keys are written into the caller's buffer; C strings are copied
// into Go strings once; no Go pointer is stored on the C side. Every shim
// recovers a panic into an error code and one error-log line: an
// unrecovered panic would abort mariadbd.
package cabi
