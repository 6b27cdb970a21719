// Package ratelimit paces the KMS calls of one process: Limiter is a
// client-side request rate that adapts to throttling (cut on a
// ThrottlingException, probed up slowly on success), shared by every
// worker of the process; Backoff is the shared pause after a KMS failure
// that is not a rate signal (KMS down, 5xx, network). The plugin's start,
// background unwraps and rotation, and the operator tool's runner all use
// these two, so a fleet restarting against one account quota asks KMS
// only about as fast as the quota answers.
package ratelimit
