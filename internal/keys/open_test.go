package keys

import (
	"path/filepath"
	"testing"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
)

// An Open that fails gives its key memory back (it used to keep the
// first chunk mapped for good).
func TestOpenFailureReleasesKeyMemory(t *testing.T) {
	m := New(Config{Store: keyfile.New(filepath.Join(t.TempDir(), "missing")), Log: nopLog{}})
	if err := m.Open(); err == nil {
		t.Fatal("Open of a missing directory succeeded")
	}
	if _, err := m.arena.Alloc(); err == nil {
		t.Fatal("after a failed Open the key memory still hands out slots")
	}
	if locked, _ := m.arena.Locked(); locked {
		t.Fatal("after a failed Open key memory is still mapped")
	}
}

type nopLog struct{}

func (nopLog) Note(string)          {}
func (nopLog) Warning(string)       {}
func (nopLog) Error(string)         {}
func (nopLog) KMSError(string)      {}
func (nopLog) ClientError(string)   {}
func (nopLog) ClientWarning(string) {}
