package memtrim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Mapping is one line of /proc/PID/smaps with the fields memtrim uses.
type Mapping struct {
	Start, End uintptr
	Perms      string // "r-xp"
	Inode      uint64
	Path       string
	RssKB      int64
	AnonKB     int64 // pages written since mapping (copy-on-write): not clean
}

// ParseSmaps reads /proc/PID/smaps text.
func ParseSmaps(r io.Reader) ([]Mapping, error) {
	var maps []Mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if m, ok := header(f); ok {
			maps = append(maps, m)
			continue
		}
		if len(maps) == 0 || len(f) < 2 {
			continue
		}
		cur := &maps[len(maps)-1]
		switch f[0] {
		case "Rss:":
			cur.RssKB, _ = strconv.ParseInt(f[1], 10, 64)
		case "Anonymous:":
			cur.AnonKB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading smaps: %w", err)
	}
	return maps, nil
}

// header parses "start-end perms offset dev inode [path]".
func header(f []string) (Mapping, bool) {
	if len(f) < 5 || strings.HasSuffix(f[0], ":") {
		return Mapping{}, false
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	if !ok || len(f[1]) != 4 {
		return Mapping{}, false
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	inode, err3 := strconv.ParseUint(f[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || end <= start {
		return Mapping{}, false
	}
	m := Mapping{Start: uintptr(start), End: uintptr(end), Perms: f[1], Inode: inode}
	if len(f) > 5 {
		m.Path = strings.Join(f[5:], " ")
	}
	return m, true
}

// Clean returns the mappings of the file mapped at addr that can be
// dropped without losing anything: read-only (code, read-only data),
// private, and never written (no copy-on-write page: the relocated
// read-only data after RELRO has some and is left alone).
func Clean(maps []Mapping, addr uintptr) ([]Mapping, error) {
	var file *Mapping
	for i := range maps {
		if addr >= maps[i].Start && addr < maps[i].End {
			file = &maps[i]
			break
		}
	}
	if file == nil || file.Inode == 0 || file.Path == "" {
		return nil, fmt.Errorf("finding the library mapped at %#x: no file mapping there", addr)
	}
	var out []Mapping
	for _, m := range maps {
		if m.Inode != file.Inode || m.Path != file.Path {
			continue
		}
		if m.Perms[0] != 'r' || m.Perms[1] != '-' || m.Perms[3] != 'p' || m.AnonKB != 0 {
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// DropClean drops the clean pages of the library mapped at addr (one of
// its functions) from this process's page tables, with
// madvise(MADV_DONTNEED): the page cache keeps them and a later access
// maps them again. It returns the resident kB dropped.
func DropClean(addr uintptr) (int64, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("dropping clean library pages: %w", err)
	}
	defer f.Close()
	maps, err := ParseSmaps(f)
	if err != nil {
		return 0, fmt.Errorf("dropping clean library pages: %w", err)
	}
	clean, err := Clean(maps, addr)
	if err != nil {
		return 0, fmt.Errorf("dropping clean library pages: %w", err)
	}
	var kb int64
	for _, m := range clean {
		_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, m.Start, m.End-m.Start, syscall.MADV_DONTNEED)
		if errno != 0 {
			return kb, fmt.Errorf("dropping clean library pages (madvise %#x-%#x %s): %w", m.Start, m.End, m.Path, errno)
		}
		kb += m.RssKB
	}
	return kb, nil
}
