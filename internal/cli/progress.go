package cli

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// bar is a progress bar on a terminal (stderr); the CLI makes one only
// when stderr is a terminal.
type bar struct{ b *progressbar.ProgressBar }

func newBar(w io.Writer, total int, what string) *bar {
	return &bar{progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (b *bar) Add(n int) { b.b.Add(n) }
func (b *bar) Finish()   { b.b.Finish() }
