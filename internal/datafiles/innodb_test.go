package datafiles

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// page0 reads a page 0 written by a real mariadbd (see testdata/README).
func page0(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fcrc32Page is page no of a full_crc32 tablespace of 16 KiB pages with
// key version v (0: not encrypted), filler content and its checksum.
func fcrc32Page(no, v uint32, fill byte) []byte {
	b := bytes.Repeat([]byte{fill}, 16384)
	binary.BigEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[filPageOffset:], no)
	binary.BigEndian.PutUint32(b[16384-4:], crc32.Checksum(b[:16384-4], castagnoli))
	return b
}

func TestParsePage0Real(t *testing.T) {
	h, err := ParsePage0(page0(t, "t5.ibd-page0.gz"))
	want := Page0{SpaceID: 6, Flags: 0x15, PhysicalSize: 16384, LogicalSize: 16384, FullCRC32: true,
		HasCrypt: true, Scheme: 1, KeyID: 5, MinKeyVersion: 1}
	if err != nil || h != want {
		t.Fatalf("encrypted table's page 0: %+v, %v; want %+v", h, err, want)
	}
	h, err = ParsePage0(page0(t, "plain.ibd-page0.gz"))
	if err != nil || h.HasCrypt || h.PhysicalSize != 16384 || h.SpaceID != 2 {
		t.Fatalf("plain table's page 0: %+v, %v", h, err)
	}
	// The encryption header is where write_page0 puts it: moving it
	// loses it (the offset is not found by searching).
	b := page0(t, "t5.ibd-page0.gz")
	off := cryptOffset(16384, 16384)
	if !bytes.Equal(b[off:off+6], cryptMagic) || off != 10428 {
		t.Fatalf("crypt header not at %d", off)
	}
	copy(b[off+1:], b[off:off+cryptHeaderLen])
	if h, err := ParsePage0(b); err != nil || h.HasCrypt {
		t.Fatalf("header moved by a byte: %+v, %v", h, err)
	}
}

func TestParsePage0Errors(t *testing.T) {
	b := page0(t, "t5.ibd-page0.gz")
	for name, mod := range map[string]func([]byte) []byte{
		"short":          func(b []byte) []byte { return b[:40] },
		"not page 0":     func(b []byte) []byte { binary.BigEndian.PutUint32(b[filPageOffset:], 7); return b },
		"space id":       func(b []byte) []byte { binary.BigEndian.PutUint32(b[filPageSpaceID:], 9); return b },
		"page size code": func(b []byte) []byte { binary.BigEndian.PutUint32(b[fspSpaceFlags:], 0x10|9); return b },
		"scheme 7":       func(b []byte) []byte { b[10428+6] = 7; return b },
		"truncated page": func(b []byte) []byte { return b[:4096] },
	} {
		c := append([]byte(nil), b...)
		if h, err := ParsePage0(mod(c)); err == nil {
			t.Errorf("%s: no error (%+v)", name, h)
		}
	}
}

func TestPageSizes(t *testing.T) {
	for _, c := range []struct {
		flags              uint32
		physical, logical  int
		full               bool
		cryptAt            int
		cryptAtDescription string
	}{
		{0x15, 16384, 16384, true, 10428, "full_crc32 16k (the default)"},
		{0x13, 4096, 4096, true, 38 + 150 + 88*16, "full_crc32 4k: 256-page extents"},
		{0x17, 65536, 65536, true, 38 + 150 + 40*1024, "full_crc32 64k: 64-page extents"},
		{0, 16384, 16384, false, 10428, "old format, 16k"},
		{0x21 | 4<<1, 8192, 16384, false, 38 + 150 + 40*128, "ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8"},
	} {
		p, l, full, err := pageSizes(c.flags)
		if err != nil || p != c.physical || l != c.logical || full != c.full || cryptOffset(p, l) != c.cryptAt {
			t.Errorf("%s: %d %d %v %v, crypt at %d", c.cryptAtDescription, p, l, full, err, cryptOffset(p, l))
		}
	}
}

func TestPageKeyVersion(t *testing.T) {
	fc := Page0{SpaceID: 6, Flags: 0x15, PhysicalSize: 16384, LogicalSize: 16384, FullCRC32: true}
	torn := fcrc32Page(3, 2, 0xab)
	torn[9000] ^= 1
	compressed := fc
	compressed.Flags |= 1 << 5 // innodb_compression_algorithm=zlib
	noSum := fcrc32Page(3, 2, 0xab)
	noSum[16383] ^= 1
	old := Page0{SpaceID: 6, Flags: 0x21, PhysicalSize: 16384, LogicalSize: 16384}
	oldPage := func(no, space uint32, typ uint16, v uint32) []byte {
		b := make([]byte, 16384)
		binary.BigEndian.PutUint32(b[filPageOffset:], no)
		binary.BigEndian.PutUint16(b[filPageType:], typ)
		binary.BigEndian.PutUint32(b[filPageKeyVersion:], v)
		binary.BigEndian.PutUint32(b[filPageSpaceID:], space)
		return b
	}
	for _, c := range []struct {
		name string
		h    Page0
		no   uint32
		page []byte
		v    uint32
		ok   bool
	}{
		{"full_crc32 encrypted", fc, 3, fcrc32Page(3, 2, 0xab), 2, true},
		{"full_crc32 not encrypted", fc, 3, fcrc32Page(3, 0, 0xab), 0, true},
		{"another page's copy (doublewrite)", fc, 4, fcrc32Page(3, 2, 0xab), 0, false},
		{"torn (checksum)", fc, 3, torn, 0, false},
		{"never written", fc, 5, make([]byte, 16384), 0, true},
		{"short read", fc, 3, fcrc32Page(3, 2, 0xab)[:100], 0, false},
		{"page_compressed: checksum not at the end", compressed, 3, noSum, 2, true},
		{"old format encrypted", old, 3, oldPage(3, 6, 17855, 4), 4, true},
		{"old format: another space's page", old, 3, oldPage(3, 7, 17855, 4), 0, false},
		{"old format page_compressed, not encrypted (algorithm at 26)", old, 3, oldPage(3, 6, pageTypeCompressed, 1), 0, true},
		{"old format page_compressed and encrypted", old, 3, oldPage(3, 6, 37401, 5), 5, true},
	} {
		v, ok := PageKeyVersion(c.h, c.no, c.page)
		if v != c.v || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.name, v, ok, c.v, c.ok)
		}
	}
}

// writeTablespace writes page 0 and pages into dir/name.
func writeTablespace(t *testing.T, path string, page0 []byte, pages ...[]byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Join(append([][]byte{page0}, pages...), nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestScanDir(t *testing.T) {
	dir := t.TempDir()
	torn := fcrc32Page(4, 9, 0x11)
	torn[100] ^= 0xff
	p0 := page0(t, "t5.ibd-page0.gz")
	writeTablespace(t, filepath.Join(dir, "d", "t5.ibd"), p0,
		fcrc32Page(1, 2, 0x11), fcrc32Page(2, 3, 0x22), fcrc32Page(3, 3, 0x33), torn, make([]byte, 16384))
	// A tablespace whose minimum key version is 3: a page still on 2 is
	// a free page (the encryption threads re-encrypt pages in use first).
	p0min := append([]byte(nil), p0...)
	binary.BigEndian.PutUint32(p0min[10428+24:], 3)
	writeTablespace(t, filepath.Join(dir, "d", "min.ibd"), p0min, fcrc32Page(1, 2, 0x44), fcrc32Page(2, 3, 0x55))
	writeTablespace(t, filepath.Join(dir, "mysql", "plain.ibd"), page0(t, "plain.ibd-page0.gz"), fcrc32Page(1, 0, 0x66))
	if err := os.WriteFile(filepath.Join(dir, "ib_logfile0"), testdata(t, "ib_logfile0-enc11.header"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mysql-bin.000001"), testdata(t, "binlog-encrypted-v2.start"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "broken.ibd"), []byte("not a tablespace"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !LooksLikeDataDir(dir) || LooksLikeDataDir(t.TempDir()) {
		t.Fatal("LooksLikeDataDir")
	}
	s, err := ScanDir(context.Background(), dir, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Use{
		{KeyID: 1, Version: 1, Files: []string{"ib_logfile0"}},
		{KeyID: 1, Version: 2, Files: []string{"mysql-bin.000001"}},
		{KeyID: 5, Version: 2, Files: []string{"d/t5.ibd"}},
		{KeyID: 5, Version: 3, Files: []string{"d/min.ibd", "d/t5.ibd"}},
	}
	if !reflect.DeepEqual(s.Uses, want) {
		t.Errorf("uses:\n%+v\nwant\n%+v", s.Uses, want)
	}
	if len(s.Errors) != 1 || !bytes.Contains([]byte(s.Errors[0]), []byte("broken.ibd")) {
		t.Errorf("errors: %q", s.Errors)
	}
	for _, ts := range s.Tablespaces {
		switch filepath.Base(ts.File) {
		case "t5.ibd":
			if ts.Pages != 5 || ts.Unreadable != 1 || !reflect.DeepEqual(ts.Versions, []VersionCount{{2, 1}, {3, 2}}) {
				t.Errorf("t5: %+v", ts)
			}
		case "min.ibd":
			if ts.BelowMin != 1 {
				t.Errorf("min.ibd: %+v", ts)
			}
		}
	}
	ev, complete := FindEncrypted(dir, 10)
	if !complete || len(ev) != 2 || len(ev[1]) != 1 || ev[1][0].File != "ib_logfile0" || len(ev[5]) != 2 {
		t.Errorf("FindEncrypted: %v %v", ev, complete)
	}
	if ev, complete := FindEncrypted(dir, 1); complete || len(ev[1]) != 1 {
		t.Errorf("FindEncrypted bounded: %v %v", ev, complete)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ScanDir(ctx, dir, 2, nil); err == nil {
		t.Error("ScanDir after cancel: no error")
	}
}

func FuzzParsePage0(f *testing.F) {
	f.Add(page0(f, "t5.ibd-page0.gz"))
	f.Add(page0(f, "plain.ibd-page0.gz"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParsePage0(b)
		if err == nil && (h.PhysicalSize > len(b) || h.PhysicalSize < 1024) {
			t.Fatalf("accepted %d bytes as a page of %d", len(b), h.PhysicalSize)
		}
	})
}

// BenchmarkReadTablespace reads a 64 MiB tablespace (4096 encrypted
// full_crc32 pages, checksums checked): go test -bench ReadTablespace.
func BenchmarkReadTablespace(b *testing.B) {
	path := filepath.Join(b.TempDir(), "t.ibd")
	pages := [][]byte{page0(b, "t5.ibd-page0.gz")}
	for i := uint32(1); i < 4096; i++ {
		pages = append(pages, fcrc32Page(i, 3, byte(i)))
	}
	if err := os.WriteFile(path, bytes.Join(pages, nil), 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(4096 * 16384)
	for b.Loop() {
		ts, err := ReadTablespace(context.Background(), path)
		if err != nil || ts.Unreadable != 0 || len(ts.Versions) != 1 {
			b.Fatalf("%+v %v", ts, err)
		}
	}
}

// BenchmarkFindEncrypted is the plugin's look at a datadir with no key
// file: page 0 of 1000 unencrypted tablespaces (a first start on a big
// datadir that was never encrypted, the case where it reads them all).
func BenchmarkFindEncrypted(b *testing.B) {
	dir := b.TempDir()
	p0 := page0(b, "plain.ibd-page0.gz")
	for i := range 1000 {
		path := filepath.Join(dir, "db", fmt.Sprintf("t%d.ibd", i))
		if i == 0 {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(path, p0, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if ev, complete := FindEncrypted(dir, 100000); len(ev) != 0 || !complete {
			b.Fatal(ev)
		}
	}
}
