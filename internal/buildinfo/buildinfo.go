package buildinfo

// Set with -ldflags '-X github.com/mariadb-go/aws_key_management/internal/buildinfo.Version=...'
// (and .Commit); a plain `go build` leaves the defaults.
var (
	// Version is the project's version (the VERSION file of the checkout).
	Version = "dev"
	// Commit is the git commit, abbreviated, with "-dirty" when the
	// checkout had uncommitted changes; "unknown" outside a git checkout.
	Commit = "unknown"
)

// String is the version as the plugin's description and the tool's
// --version show it, e.g. "1.1.0 commit 99e1bea1c2d3".
func String() string { return Version + " commit " + Commit }
