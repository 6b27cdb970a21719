// Package kmserr describes failed KMS calls for the two backends (the AWS
// client and the mock): which exception names mean "slow down" or "try
// again", and the one-line text the plugin logs for a failed call, in the
// words of MariaDB's C++ plugin. The key manager sees only the methods of
// Error, never an exception name.
package kmserr
