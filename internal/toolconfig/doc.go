// Package toolconfig settles the operator tool's settings from the same
// sources as the plugin's: the server's option files (the groups mariadbd
// reads), then the command line; and the connection to the server from
// the client groups of the same files, MYSQL_PWD and the command line.
package toolconfig
