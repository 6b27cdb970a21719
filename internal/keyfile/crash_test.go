package keyfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment of the child process of TestCreateSurvivesKill9.
const (
	crashDirEnv  = "KEYFILE_CRASH_DIR"  // key directory; set only in the child
	crashSlowEnv = "KEYFILE_CRASH_SLOW" // "1": sleep before each step of Create
)

// crashIDs is how many key ids the child rotates through.
const crashIDs = 3

// crashBlob is what the child stores as (id, version): 150..249 bytes that
// depend on both numbers, so a truncated, empty, swapped or mixed-up file
// is detected byte for byte.
func crashBlob(id, ver uint32) []byte {
	n := 150 + int((id*31+ver*7)%100)
	var out []byte
	for i := 0; len(out) < n; i++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("key %d version %d block %d", id, ver, i)))
		out = append(out, sum[:]...)
	}
	return out[:n]
}

// TestCrashChild is the child of TestCreateSurvivesKill9: it creates key
// versions in a loop until it is killed. On its own it is skipped.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child of TestCreateSurvivesKill9; it runs only when that test starts it")
	}
	s := New(dir)
	if os.Getenv(crashSlowEnv) == "1" {
		// Widen the window: a pause of up to 1.5 ms before each step, so
		// that kills land between open, write, fsync, link and the
		// directory fsync, not only inside the system calls.
		testHook = func(string, *os.File) error {
			time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
			return nil
		}
	}
	// Go on from what the previous (killed) child left.
	next := map[uint32]uint32{}
	entries, err := s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		next[e.ID] = max(next[e.ID], e.Version)
	}
	fmt.Println("crash child: creating")
	deadline := time.Now().Add(20 * time.Second) // never outlive the parent's bound
	for i := 0; time.Now().Before(deadline); i++ {
		id := uint32(i%crashIDs + 1)
		ver := next[id] + 1
		if err := s.Create(id, ver, crashBlob(id, ver)); err != nil {
			t.Fatalf("Create(%d, %d): %v", id, ver, err)
		}
		next[id] = ver
	}
	t.Fatal("not killed within 20 s")
}

// kill9Child starts the child test (TestCrashChild or
// TestReplaceCrashChild) on dir, waits until it writes key files, lets it
// run for 0..20 ms and SIGKILLs it.
func kill9Child(t *testing.T, child, dir string, slow bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("%s=%d", crashSlowEnv, map[bool]int{false: 0, true: 1}[slow]))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		started <- line
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-started:
		if !strings.HasPrefix(line, "crash child: ") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child did not start: %q\n%s", line, stderr.String())
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child did not start within 15 s\n%s", stderr.String())
	}
	time.Sleep(time.Duration(rand.IntN(20001)) * time.Microsecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended by itself (%v), not by the kill:\n%s", cmd.ProcessState, stderr.String())
	}
}

// checkAfterCrash checks the directory a killed child left: every file is
// a complete key file (mode 0400, exactly the intended content) or a
// temporary file with a temporary name; versions have no gaps; Scan sees
// the key files only; CleanTemp removes the temporary files and nothing
// else. It returns the number of versions and of temporary files.
func checkAfterCrash(t *testing.T, s *Store) (versions, temps int) {
	t.Helper()
	des, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	keyNames := map[string]bool{}
	var tempNames []string
	latest := map[uint32]uint32{}
	count := map[uint32]uint32{}
	for _, de := range des {
		name := de.Name()
		st, err := os.Lstat(filepath.Join(s.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !st.Mode().IsRegular() || st.Mode().Perm() != FileMode {
			t.Errorf("%s: mode %v, want a regular file with mode %v", name, st.Mode(), FileMode)
		}
		if id, ver, ok := ParseName(name); ok {
			want := crashBlob(id, ver)
			switch {
			case st.Size() == 0:
				t.Errorf("%s is empty", name)
			case !bytes.Equal(data, want):
				t.Errorf("%s has %d bytes, not the %d intended (truncated or wrong content)", name, len(data), len(want))
			}
			if got, err := s.Read(id, ver); err != nil || !bytes.Equal(got, want) {
				t.Errorf("Store.Read(%d, %d): %d bytes, %v", id, ver, len(got), err)
			}
			keyNames[name] = true
			latest[id] = max(latest[id], ver)
			count[id]++
			continue
		}
		base, suffix, found := strings.Cut(name, tempMarker)
		id, ver, ok := ParseName(base)
		if _, herr := hex.DecodeString(suffix); !found || !ok || len(suffix) != 12 || herr != nil {
			t.Errorf("unexpected file %q: neither a key file nor aws-kms-key.<id>.<ver>.tmp-<12 hex>", name)
			continue
		}
		// A temporary file may be cut short, but holds nothing else.
		if !bytes.HasPrefix(crashBlob(id, ver), data) {
			t.Errorf("temporary file %s holds bytes that are not its key's", name)
		}
		tempNames = append(tempNames, name)
	}
	for id, n := range count {
		if n != latest[id] {
			t.Errorf("key %d: %d versions on disk but the latest is %d (a version went missing)", id, n, latest[id])
		}
	}
	entries, err := s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(keyNames) {
		t.Errorf("Scan found %d entries, the directory has %d key files", len(entries), len(keyNames))
	}
	for _, e := range entries {
		if !keyNames[Name(e.ID, e.Version)] {
			t.Errorf("Scan returned %v, which is not a complete key file", e)
		}
	}
	removed, err := s.CleanTemp()
	if err != nil {
		t.Fatalf("CleanTemp: %v", err)
	}
	sort.Strings(removed)
	sort.Strings(tempNames)
	if strings.Join(removed, ",") != strings.Join(tempNames, ",") {
		t.Errorf("CleanTemp removed %v, want %v", removed, tempNames)
	}
	after, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range after {
		if !keyNames[de.Name()] {
			t.Errorf("after CleanTemp: %s is still there", de.Name())
		}
	}
	if len(after) != len(keyNames) {
		t.Errorf("after CleanTemp: %d files, want the %d key files", len(after), len(keyNames))
	}
	return len(keyNames), len(tempNames)
}

// A kill -9 at any moment of Store.Create leaves either no new version or
// a complete one: the test binary re-executes itself as a child that
// creates key versions in a loop, kills it after 0..20 ms, checks the
// directory, and starts the next child on the same directory. Half of the
// children pause before each step of Create so that kills land at every
// step. Bounded: 60 kills or 30 s.
func TestCreateSurvivesKill9(t *testing.T) {
	s := New(t.TempDir())
	const iterations = 60
	start := time.Now()
	kills, temps, versions := 0, 0, 0
	for i := 0; i < iterations && time.Since(start) < 30*time.Second; i++ {
		kill9Child(t, "TestCrashChild", s.dir, i%2 == 1)
		kills++
		v, n := checkAfterCrash(t, s)
		if v < versions {
			t.Fatalf("kill %d: %d versions, %d before: versions disappeared", kills, v, versions)
		}
		versions = v
		temps += n
		if t.Failed() {
			t.Fatalf("after kill %d", kills)
		}
	}
	t.Logf("%d kills in %v: %d complete versions, %d temporary files left by kills (removed by CleanTemp)",
		kills, time.Since(start).Round(time.Millisecond), versions, temps)
	if kills < 20 {
		t.Errorf("only %d kills within 30 s", kills)
	}
	if versions < kills/2 {
		t.Errorf("only %d versions created in %d runs: the children hardly got to Create", versions, kills)
	}
	if temps == 0 {
		t.Errorf("no kill landed while a temporary file existed: the test did not reach the crash window")
	}
}
