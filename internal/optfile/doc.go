// Package optfile reads MariaDB option files (my.cnf and the files it
// includes) the way the server reads them, so that the project's tools
// take the plugin's settings from where the DBA already wrote them.
package optfile
