package datafiles

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// ariaPage is a page of 8 KiB that starts with head (the first bytes of
// a real page, see testdata/README) and has filler for the rest (the
// encrypted part, which no parser reads).
func ariaPage(head []byte, fill byte) []byte {
	b := bytes.Repeat([]byte{fill}, 8192)
	copy(b, head)
	return b
}

// withVersion is a copy of head with the little-endian key version at off.
func withVersion(head []byte, off int, v uint32) []byte {
	b := append([]byte(nil), head...)
	binary.LittleEndian.PutUint32(b[off:], v)
	return b
}

func TestParseAriaHeaderReal(t *testing.T) {
	for _, c := range []struct {
		file                                  string
		encrypted, transactional, blockRecord bool
	}{
		{"aria-t.MAI-page0.gz", true, true, true},
		{"aria-nt.MAI-page0.gz", true, false, true},
		{"aria-plain.MAI-page0.gz", false, false, false},
	} {
		h, err := ParseAriaHeader(page0(t, c.file))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if h.Encrypted != c.encrypted || h.Transactional != c.transactional || h.BlockRecord != c.blockRecord ||
			h.BlockSize != 8192 || h.KeyStart != 8192 || h.KeyID != 1 {
			t.Errorf("%s: %+v", c.file, h)
		}
	}
}

func TestParseAriaHeaderErrors(t *testing.T) {
	real := page0(t, "aria-t.MAI-page0.gz")
	bad := func(f func(b []byte)) []byte {
		b := append([]byte(nil), real...)
		f(b)
		return b
	}
	for name, c := range map[string]struct {
		b    []byte
		want string
	}{
		"not Aria":   {[]byte("not an Aria file at all, but long enough to be read"), "not an Aria index file"},
		"cut short":  {real[:300], "cut short"},
		"block size": {bad(func(b []byte) { binary.BigEndian.PutUint16(b[239+ariaBaseBlockSize:], 5000) }), "block size 5000"},
		"keystart":   {bad(func(b []byte) { binary.BigEndian.PutUint64(b[239+ariaBaseKeystart:], 100) }), "index pages at 100"},
		"empty":      {nil, "not an Aria index file"},
	} {
		if _, err := ParseAriaHeader(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	tmp := bad(func(b []byte) { b[ariaHeaderOptions+1] |= ariaOptionTmpTable })
	if h, err := ParseAriaHeader(tmp); err != nil || h.KeyID != 2 {
		t.Errorf("a temporary table: %+v %v, want key 2", h, err)
	}
}

func TestAriaPageVersions(t *testing.T) {
	trans, _ := ParseAriaHeader(page0(t, "aria-t.MAI-page0.gz"))
	nontrans, _ := ParseAriaHeader(page0(t, "aria-nt.MAI-page0.gz"))
	head := testdata(t, "aria-t.MAD-page1.head")
	blob := testdata(t, "aria-blob.MAD-page.head")
	unknownType := append([]byte(nil), head...)
	unknownType[ariaPageTypeOffset] = 5
	idx := func(keyNr byte) []byte {
		b := append([]byte(nil), testdata(t, "aria-t.MAI-page1.head")...)
		b[17] = keyNr
		return ariaPage(b, 0)
	}
	for _, c := range []struct {
		name string
		got  pageVersion
		want pageVersion
	}{
		{"head page (real, version 2)", pv(AriaDataPageVersion(trans, 1, ariaPage(head, 0x5a))), pageVersion{2, true, true}},
		{"head page (real, version 3)", pv(AriaDataPageVersion(trans, 5, ariaPage(testdata(t, "aria-t.MAD-page5.head"), 0x5a))), pageVersion{3, true, true}},
		{"blob page (real, version 2)", pv(AriaDataPageVersion(trans, 2, ariaPage(blob, 0x5a))), pageVersion{2, true, true}},
		{"bitmap page 0", pv(AriaDataPageVersion(trans, 0, ariaPage(head, 0x5a))), pageVersion{0, false, true}},
		{"bitmap page 21825", pv(AriaDataPageVersion(trans, 21825, ariaPage(head, 0x5a))), pageVersion{0, false, true}},
		{"unallocated page", pv(AriaDataPageVersion(trans, 3, make([]byte, 8192))), pageVersion{0, false, true}},
		{"unknown page type", pv(AriaDataPageVersion(trans, 3, ariaPage(unknownType, 0))), pageVersion{0, true, false}},
		{"version 0", pv(AriaDataPageVersion(trans, 3, ariaPage(withVersion(head, ariaHeadTailVersion, 0), 0))), pageVersion{0, true, false}},
		{"index (real, transactional)", pv(AriaIndexPageVersion(trans, idx(0))), pageVersion{3, true, true}},
		{"index (real, not transactional)", pv(AriaIndexPageVersion(nontrans, ariaPage(testdata(t, "aria-nt.MAI-page1.head"), 0x5a))), pageVersion{2, true, true}},
		{"index never written", pv(AriaIndexPageVersion(trans, make([]byte, 8192))), pageVersion{0, false, true}},
		{"index on the free list", pv(AriaIndexPageVersion(trans, idx(ariaDeletedKeyPage))), pageVersion{0, false, true}},
		{"index of another key number", pv(AriaIndexPageVersion(trans, idx(3))), pageVersion{3, true, true}},
		{"index with version 0", pv(AriaIndexPageVersion(trans, ariaPage(withVersion(testdata(t, "aria-t.MAI-page1.head"), 13, 0), 0))), pageVersion{0, true, false}},
	} {
		if c.got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, c.got, c.want)
		}
	}
}

type pageVersion struct {
	v        uint32
	used, ok bool
}

func pv(v uint32, used, ok bool) pageVersion { return pageVersion{v, used, ok} }

// writeAria writes an Aria table's .MAI (header page and index pages)
// and .MAD (pages) under dir.
func writeAria(t *testing.T, dir, name string, header []byte, index, data [][]byte) {
	t.Helper()
	writeTablespace(t, filepath.Join(dir, name+".MAI"), header, index...)
	if err := os.WriteFile(filepath.Join(dir, name+".MAD"), bytes.Join(data, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestScanDirAria(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	head := testdata(t, "aria-t.MAD-page1.head")
	bitmap := make([]byte, 8192)
	bitmap[0] = 0x24
	// Only this table needs version 2 of key 1; the other table and the
	// redo log do not.
	writeAria(t, d, "old", page0(t, "aria-t.MAI-page0.gz"),
		[][]byte{ariaPage(withVersion(testdata(t, "aria-t.MAI-page1.head"), 13, 4), 0x11)},
		[][]byte{bitmap, ariaPage(head, 0x22), ariaPage(withVersion(head, ariaHeadTailVersion, 4), 0x33), make([]byte, 8192)})
	writeAria(t, d, "nt", page0(t, "aria-nt.MAI-page0.gz"),
		[][]byte{ariaPage(withVersion(testdata(t, "aria-nt.MAI-page1.head"), 7, 4), 0x44)},
		[][]byte{bitmap, ariaPage(withVersion(head, ariaHeadTailVersion, 4), 0x55)})
	// Not encrypted: its pages are not read (the .MAD is not even there).
	writeTablespace(t, filepath.Join(dir, "mysql", "plain.MAI"), page0(t, "aria-plain.MAI-page0.gz"))
	if err := os.WriteFile(filepath.Join(d, "broken.MAI"), []byte("not Aria"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An encrypted table whose .MAD is gone: an error naming it.
	writeTablespace(t, filepath.Join(d, "nodata.MAI"), page0(t, "aria-nt.MAI-page0.gz"))
	s, err := ScanDir(context.Background(), dir, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Use{
		{KeyID: 1, Version: 2, Files: []string{"d/old.MAD"}},
		{KeyID: 1, Version: 4, Files: []string{"d/nt.MAD", "d/old.MAD"}},
	}
	if !reflect.DeepEqual(s.Uses, want) {
		t.Errorf("uses:\n%+v\nwant\n%+v", s.Uses, want)
	}
	if len(s.Errors) != 2 || !strings.Contains(strings.Join(s.Errors, "\n"), "broken.MAI: not an Aria index file") ||
		!strings.Contains(strings.Join(s.Errors, "\n"), "nodata.MAD") {
		t.Errorf("errors: %q", s.Errors)
	}
	found := 0
	for _, a := range s.AriaTables {
		switch filepath.Base(a.File) {
		case "old.MAD":
			found++
			if !a.Encrypted || a.KeyID != 1 || a.Pages != 3 || a.Unreadable != 0 || !reflect.DeepEqual(a.Versions, []VersionCount{{2, 1}, {4, 2}}) {
				t.Errorf("old: %+v", a)
			}
		case "plain.MAD":
			found++
			if a.Encrypted || a.Pages != 0 || a.Error != "" {
				t.Errorf("plain: %+v", a)
			}
		}
	}
	if found != 2 || len(s.AriaTables) != 5 {
		t.Errorf("aria tables: %+v", s.AriaTables)
	}
	// The restore guard's look: the encrypted tables' headers name key 1.
	ev, complete := FindEncrypted(dir, 10)
	if !complete || len(ev) != 1 || !reflect.DeepEqual(ev[1], []Evidence{{File: "d/nodata.MAD", KeyID: 1}, {File: "d/nt.MAD", KeyID: 1}, {File: "d/old.MAD", KeyID: 1}}) {
		t.Errorf("FindEncrypted: %+v %v", ev, complete)
	}
}

func FuzzParseAriaHeader(f *testing.F) {
	f.Add(page0(f, "aria-t.MAI-page0.gz")[:512])
	f.Add(page0(f, "aria-plain.MAI-page0.gz")[:512])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseAriaHeader(b)
		if err == nil && (h.BlockSize < 1024 || h.KeyStart%int64(h.BlockSize) != 0) {
			t.Errorf("accepted %+v", h)
		}
		if err == nil && h.BlockSize >= 32 {
			page := make([]byte, h.BlockSize)
			copy(page, b)
			AriaIndexPageVersion(h, page)
			AriaDataPageVersion(h, 1, page)
		}
	})
}

func BenchmarkReadAriaTable(b *testing.B) {
	dir := b.TempDir()
	head, err := os.ReadFile(filepath.Join("testdata", "aria-t.MAD-page1.head"))
	if err != nil {
		b.Fatal(err)
	}
	index, err := os.ReadFile(filepath.Join("testdata", "aria-t.MAI-page1.head"))
	if err != nil {
		b.Fatal(err)
	}
	// 64 MiB of data pages (a bitmap page first) and 1 MiB of index pages.
	data := [][]byte{make([]byte, 8192)}
	for range 8191 {
		data = append(data, ariaPage(head, 0x5a))
	}
	var idx [][]byte
	for range 128 {
		idx = append(idx, ariaPage(index, 0x5a))
	}
	mai := bytes.Join(append([][]byte{page0(b, "aria-t.MAI-page0.gz")}, idx...), nil)
	if err := os.WriteFile(filepath.Join(dir, "t.MAI"), mai, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t.MAD"), bytes.Join(data, nil), 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(mai) + 8192*8192))
	for b.Loop() {
		a, err := ReadAriaTable(context.Background(), filepath.Join(dir, "t.MAI"))
		if err != nil || a.Unreadable != 0 || len(a.Versions) != 2 || a.Pages != 8191+128 {
			b.Fatalf("%+v %v", a, err)
		}
	}
}
