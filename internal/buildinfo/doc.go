// Package buildinfo holds the project's version and the git commit a
// binary was built from, set at link time by the Makefile (go build
// -ldflags -X), so that a DBA can tell which build of the plugin a server
// has loaded and which build of the operator tool runs.
package buildinfo
