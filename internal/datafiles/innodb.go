package datafiles

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sort"
)

// The layout of an InnoDB tablespace in MariaDB 10.5 to 11.x
// (storage/innobase/include/fil0fil.h, fsp0types.h, fil0crypt.h):
//
// Every page starts with the FIL header: page number at 4, page type at
// 24, space id at 34. The key version a page was encrypted with is at 0
// in the full_crc32 format (innodb_checksum_algorithm=full_crc32, the
// default since 10.5; 0 when the page is not encrypted; bytes 0..15 are
// never encrypted, the last 4 bytes are the CRC-32C of the rest), and
// at 26 in the older formats (FIL_PAGE_FILE_FLUSH_LSN_OR_KEY_VERSION; the
// 38-byte header is never encrypted; on an unencrypted page_compressed
// page, type 34354, that field holds the compression algorithm instead).
//
// Page 0 holds the FSP header at 38: the space id at 38 and the flags at
// 54, which give the page size and the format. After the extent
// descriptors, page 0 carries the tablespace's encryption header (written
// by fil_space_crypt_t::write_page0): the magic "s\x0e\x0cREt", the
// scheme (1 byte: 0 unencrypted, 1 encrypted), the IV length (1 byte, 16)
// and IV, the minimum key version of its pages (4 bytes big-endian), the
// key id (4 bytes) and the ENCRYPTED= option (1 byte). A tablespace that
// has no such header was never encrypted.
const (
	filPageOffset      = 4
	filPageType        = 24
	filPageKeyVersion  = 26 // FIL_PAGE_FILE_FLUSH_LSN_OR_KEY_VERSION
	filPageSpaceID     = 34
	fspHeader          = 38
	fspSpaceFlags      = fspHeader + 16
	xdesArrOffset      = fspHeader + 112 // FSP_HEADER_OFFSET + FSP_HEADER_SIZE
	fcrc32MarkerFlag   = 1 << 4
	pageTypeCompressed = 34354 // FIL_PAGE_PAGE_COMPRESSED
	cryptHeaderLen     = 6 + 1 + 1 + 16 + 4 + 4 + 1
)

var cryptMagic = []byte{'s', 0x0e, 0x0c, 'R', 'E', 't'}

// Page0 is what page 0 of a tablespace says.
type Page0 struct {
	SpaceID uint32
	Flags   uint32
	// PhysicalSize is the size of a page in the file; LogicalSize the
	// server's innodb_page_size (they differ for ROW_FORMAT=COMPRESSED).
	PhysicalSize, LogicalSize int
	FullCRC32                 bool
	// HasCrypt: page 0 carries an encryption header. Scheme 1 means the
	// tablespace is encrypted (0: being or been decrypted).
	HasCrypt      bool
	Scheme        uint8
	KeyID         uint32
	MinKeyVersion uint32
}

// pageSizes reads the page sizes and format from the FSP flags.
func pageSizes(flags uint32) (physical, logical int, fullCRC32 bool, err error) {
	if flags&fcrc32MarkerFlag != 0 {
		ssize := flags & 0xf
		if ssize < 3 || ssize > 7 {
			return 0, 0, false, fmt.Errorf("full_crc32 tablespace flags 0x%x with page size code %d", flags, ssize)
		}
		return 512 << ssize, 512 << ssize, true, nil
	}
	logical = 16384
	if ps := (flags >> 6) & 0xf; ps != 0 {
		if ps < 3 || ps > 7 {
			return 0, 0, false, fmt.Errorf("tablespace flags 0x%x with page size code %d", flags, ps)
		}
		logical = 512 << ps
	}
	physical = logical
	if zs := (flags >> 1) & 0xf; zs != 0 {
		if zs > 5 {
			return 0, 0, false, fmt.Errorf("tablespace flags 0x%x with compressed page size code %d", flags, zs)
		}
		physical = 512 << zs
	}
	return physical, logical, false, nil
}

// cryptOffset is where page 0 keeps the encryption header: after the
// extent descriptors of one page's worth of extents
// (fsp_header_get_encryption_offset).
func cryptOffset(physical, logical int) int {
	extent := 64 // pages per extent (FSP_EXTENT_SIZE)
	if logical <= 16384 {
		extent = (1 << 20) / logical
	}
	xdesSize := 24 + (extent*2+7)/8 // XDES_SIZE: list node, id, state, 2 bits a page
	// fil_space_crypt_t::write_page0 adds FSP_HEADER_OFFSET to an offset
	// that counts from the start of the page already: 38 bytes more.
	return fspHeader + xdesArrOffset + xdesSize*(physical/extent)
}

// ParsePage0 reads page 0 of a tablespace (at least its physical page
// size; the first 64 bytes are enough to learn that size).
func ParsePage0(b []byte) (Page0, error) {
	if len(b) < fspSpaceFlags+4 {
		return Page0{}, errors.New("shorter than a page header")
	}
	var p Page0
	p.SpaceID = binary.BigEndian.Uint32(b[fspHeader:])
	p.Flags = binary.BigEndian.Uint32(b[fspSpaceFlags:])
	var err error
	if p.PhysicalSize, p.LogicalSize, p.FullCRC32, err = pageSizes(p.Flags); err != nil {
		return Page0{}, err
	}
	if binary.BigEndian.Uint32(b[filPageOffset:]) != 0 || binary.BigEndian.Uint32(b[filPageSpaceID:]) != p.SpaceID {
		return Page0{}, errors.New("page 0 does not name itself (page number or space id): not an InnoDB tablespace, or damaged")
	}
	if len(b) < p.PhysicalSize {
		return p, fmt.Errorf("page 0 has %d bytes, want %d", len(b), p.PhysicalSize)
	}
	off := cryptOffset(p.PhysicalSize, p.LogicalSize)
	if off+cryptHeaderLen > p.PhysicalSize {
		return p, nil
	}
	c := b[off : off+cryptHeaderLen]
	if !bytes.Equal(c[:len(cryptMagic)], cryptMagic) {
		return p, nil
	}
	if c[7] != 16 || c[6] > 1 {
		return Page0{}, fmt.Errorf("encryption header with scheme %d and IV length %d: damaged", c[6], c[7])
	}
	p.HasCrypt, p.Scheme = true, c[6]
	p.MinKeyVersion = binary.BigEndian.Uint32(c[24:])
	p.KeyID = binary.BigEndian.Uint32(c[28:])
	return p, nil
}

// PageKeyVersion is the key version page pageNo (not 0) of the
// tablespace was encrypted with: 0 if it is not encrypted. ok is false
// for a page that is not this page of this tablespace (never written,
// a copy of another page, or read while it was written): its version is
// not to be trusted.
func PageKeyVersion(h Page0, pageNo uint32, b []byte) (version uint32, ok bool) {
	if len(b) < h.PhysicalSize {
		return 0, false
	}
	b = b[:h.PhysicalSize]
	if binary.BigEndian.Uint32(b[filPageOffset:]) != pageNo {
		// A page never written is all zeros: nothing to read there.
		return 0, pageNo != 0 && allZero(b)
	}
	if h.FullCRC32 {
		version = binary.BigEndian.Uint32(b)
		// In a page_compressed tablespace (compression algorithm in the
		// flags) pages end, with their checksum, before the page does.
		if h.Flags>>5&7 != 0 {
			return version, true
		}
		n := len(b) - 4
		if crc32.Checksum(b[:n], castagnoli) != binary.BigEndian.Uint32(b[n:]) {
			return 0, false
		}
		return version, true
	}
	if binary.BigEndian.Uint32(b[filPageSpaceID:]) != h.SpaceID {
		return 0, false
	}
	if binary.BigEndian.Uint16(b[filPageType:]) == pageTypeCompressed {
		return 0, true
	}
	return binary.BigEndian.Uint32(b[filPageKeyVersion:]), true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Tablespace is what the pages of one InnoDB data file use.
type Tablespace struct {
	File    string `json:"file"`
	SpaceID uint32 `json:"space_id"`
	// Encrypted: page 0 has an encryption header of scheme 1.
	Encrypted     bool   `json:"encrypted"`
	KeyID         uint32 `json:"key_id,omitempty"`
	MinKeyVersion uint32 `json:"min_key_version,omitempty"`
	// Versions are the key versions of its encrypted pages (with the
	// number of pages each), at or above MinKeyVersion: pages with a
	// lower one are not in use (the encryption threads re-encrypt every
	// page in use before they raise the minimum).
	Versions []VersionCount `json:"key_versions"`
	Pages    int            `json:"pages"`
	// Unreadable are pages whose header or checksum does not match
	// (pages never written, or read while the server wrote them).
	Unreadable int `json:"unreadable_pages"`
	// BelowMin are encrypted pages with a version below MinKeyVersion.
	BelowMin int    `json:"pages_below_min_key_version,omitempty"`
	Error    string `json:"error,omitempty"`
}

// VersionCount is a key version and how many pages use it.
type VersionCount struct {
	Version uint32 `json:"version"`
	Pages   int    `json:"pages"`
}

// readChunk is how many bytes ReadTablespace reads at a time.
const readChunk = 1 << 20

// ReadTablespace reads every page of an InnoDB data file for the key
// versions its pages use.
func ReadTablespace(ctx context.Context, path string) (Tablespace, error) {
	t := Tablespace{File: path, Versions: []VersionCount{}}
	f, err := os.Open(path)
	if err != nil {
		return t, fmt.Errorf("reading the tablespace: %w", err)
	}
	defer f.Close()
	h, err := readPage0(f)
	if err != nil {
		return t, fmt.Errorf("%s: %w", path, err)
	}
	t.SpaceID = h.SpaceID
	if !h.HasCrypt {
		return t, nil // never encrypted: no page carries a key version
	}
	t.Encrypted, t.KeyID, t.MinKeyVersion = h.Scheme == 1, h.KeyID, h.MinKeyVersion
	counts := map[uint32]int{}
	err = eachPage(ctx, f, 0, h.PhysicalSize, func(page int64, b []byte) {
		if page == 0 {
			return
		}
		t.Pages++
		v, ok := PageKeyVersion(h, uint32(page), b)
		switch {
		case !ok:
			t.Unreadable++
		case v == 0:
		case v < h.MinKeyVersion:
			t.BelowMin++
		default:
			counts[v]++
		}
	})
	if err != nil {
		return t, fmt.Errorf("reading %s: %w", path, err)
	}
	t.Versions = sortedCounts(counts)
	return t, nil
}

// sortedCounts lists the pages per key version, by version.
func sortedCounts(counts map[uint32]int) []VersionCount {
	out := make([]VersionCount, 0, len(counts))
	for v, n := range counts {
		out = append(out, VersionCount{v, n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// eachPage calls fn with each whole page of f from offset start on, and
// its number (offset / size), reading readChunk bytes at a time; it stops
// at the end of the file, on a read error, or when ctx is done.
func eachPage(ctx context.Context, f io.ReaderAt, start int64, size int, fn func(no int64, page []byte)) error {
	buf := make([]byte, max(1, readChunk/size)*size)
	for off := start; ; off += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := f.ReadAt(buf, off)
		for p := 0; p+size <= n; p += size {
			fn((off+int64(p))/int64(size), buf[p:p+size])
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readPage0 reads and parses page 0 of an open tablespace.
func readPage0(f io.ReaderAt) (Page0, error) {
	head := make([]byte, 64)
	if _, err := f.ReadAt(head, 0); err != nil {
		return Page0{}, fmt.Errorf("reading page 0: %w", err)
	}
	h, err := ParsePage0(head)
	if err != nil && h.PhysicalSize == 0 {
		return Page0{}, err
	}
	b := make([]byte, h.PhysicalSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return Page0{}, fmt.Errorf("reading page 0: %w", err)
	}
	return ParsePage0(b)
}

// ReadPage0 reads page 0 of a tablespace file: its encryption header,
// without reading the other pages (what the plugin checks at start).
func ReadPage0(path string) (Page0, error) {
	f, err := os.Open(path)
	if err != nil {
		return Page0{}, err
	}
	defer f.Close()
	h, err := readPage0(f)
	if err != nil {
		return Page0{}, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}
