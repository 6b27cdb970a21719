package datafiles

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Aria's on-disk layout (storage/maria: ma_open.c, ma_blockrec.h,
// ma_crypt.c, maria_def.h), as MariaDB 10.x writes it. Multi-byte numbers
// in the .MAI header are big-endian; the key version on a page is
// little-endian.
var ariaMagic = []byte{0xfe, 0xfe, 0x09} // file_version[0..2]; [3] varies

const (
	ariaHeaderOptions  = 4  // options[2]: HA_OPTION_* of the table
	ariaHeaderBasePos  = 12 // base_pos[2]: where MARIA_BASE_INFO starts
	ariaHeaderKeys     = 18 // keys: number of indexes
	ariaHeaderDataType = 22 // data_file_type: BLOCK_RECORD (3) is the only one encrypted

	// Offsets inside MARIA_BASE_INFO (_ma_base_info_write).
	ariaBaseKeystart      = 16  // 8 bytes: where the index pages start in .MAI
	ariaBaseExtraOptions  = 90  // 2 bytes: MA_EXTRA_OPTIONS_ENCRYPTED is bit 0
	ariaBaseBlockSize     = 100 // 2 bytes: page size of .MAI and .MAD
	ariaBaseTransactional = 106 // born_transactional
	ariaBaseSize          = 107 // what is read of it

	ariaBlockRecord     = 3
	ariaOptionTmpTable  = 16 // HA_OPTION_TMP_TABLE: the table uses key 2
	ariaExtraEncrypted  = 1
	ariaPageSuffix      = 4   // PAGE_SUFFIX_SIZE: the checksum at the end of a page
	ariaDeletedKeyPage  = 255 // MARIA_DELETE_KEY_NR: an index page on the free list
	ariaPageTypeOffset  = 7   // LSN_SIZE: the page type follows the LSN
	ariaHeadTailVersion = 12  // KEY_VERSION_OFFSET of head and tail pages
	ariaBlobVersion     = 8   // FULL_PAGE_KEY_VERSION_OFFSET of blob pages
	ariaKeyPageFixed    = 8   // key version (4), key nr (1), flag (1), used (2): the end of an index page's header
)

// AriaHeader is what the .MAI header of an Aria table says about its
// encryption.
type AriaHeader struct {
	// Encrypted: the table was created with aria_encrypt_tables=ON
	// (MA_EXTRA_OPTIONS_ENCRYPTED); its pages carry key versions.
	Encrypted     bool
	Transactional bool
	// BlockRecord: ROW_FORMAT=PAGE, the only format Aria encrypts.
	BlockRecord bool
	// KeyID is the key the pages are encrypted with: 1
	// (ENCRYPTION_KEY_SYSTEM_DATA), or 2 for a temporary table
	// (ma_crypt.c get_encryption_key_id: key 2 if the plugin has it).
	KeyID     uint32
	Keys      int
	KeyStart  int64
	BlockSize int
}

// ParseAriaHeader parses the start of a .MAI file (the state header and
// the base info: a few hundred bytes).
func ParseAriaHeader(b []byte) (AriaHeader, error) {
	var h AriaHeader
	if len(b) < ariaHeaderDataType+1 || !bytes.Equal(b[:len(ariaMagic)], ariaMagic) {
		return h, errors.New("not an Aria index file (no Aria header)")
	}
	base := int(binary.BigEndian.Uint16(b[ariaHeaderBasePos:]))
	if len(b) < base+ariaBaseSize {
		return h, fmt.Errorf("the Aria header is cut short (%d bytes, the base info ends at %d)", len(b), base+ariaBaseSize)
	}
	bi := b[base:]
	h.Keys = int(b[ariaHeaderKeys])
	h.BlockRecord = b[ariaHeaderDataType] == ariaBlockRecord
	h.KeyStart = int64(binary.BigEndian.Uint64(bi[ariaBaseKeystart:]))
	h.BlockSize = int(binary.BigEndian.Uint16(bi[ariaBaseBlockSize:]))
	h.Transactional = bi[ariaBaseTransactional] != 0
	h.Encrypted = binary.BigEndian.Uint16(bi[ariaBaseExtraOptions:])&ariaExtraEncrypted != 0
	h.KeyID = 1
	if binary.BigEndian.Uint16(b[ariaHeaderOptions:])&ariaOptionTmpTable != 0 {
		h.KeyID = 2
	}
	// Aria's block sizes are powers of two from 1 KiB to 32 KiB.
	if h.BlockSize < 1024 || h.BlockSize > 32768 || h.BlockSize&(h.BlockSize-1) != 0 {
		return h, fmt.Errorf("the Aria header has block size %d (not a power of two from 1024 to 32768)", h.BlockSize)
	}
	if h.KeyStart < 0 || h.KeyStart%int64(h.BlockSize) != 0 {
		return h, fmt.Errorf("the Aria header has index pages at %d (not a multiple of the block size %d)", h.KeyStart, h.BlockSize)
	}
	return h, nil
}

// ariaBitmapEvery is how many pages of a .MAD file one bitmap page
// covers, itself included (ma_bitmap.c: 16 pages per 6 bytes of bitmap):
// pages 0, n, 2n... are bitmaps, not encrypted, with no key version.
func ariaBitmapEvery(blockSize int) int {
	return (blockSize-ariaPageSuffix)/6*16 + 1
}

// AriaDataPageVersion gives the key version of page no of an encrypted
// .MAD file; ok is false for a page that is not a bitmap, an unused page
// or a data page (head, tail or blob) with a version.
func AriaDataPageVersion(h AriaHeader, no int64, page []byte) (version uint32, used, ok bool) {
	if no%int64(ariaBitmapEvery(h.BlockSize)) == 0 {
		return 0, false, true
	}
	off := ariaHeadTailVersion
	switch page[ariaPageTypeOffset] & 7 {
	case 0: // UNALLOCATED_PAGE
		return 0, false, true
	case 1, 2: // HEAD_PAGE, TAIL_PAGE
	case 3: // BLOB_PAGE
		off = ariaBlobVersion
	default:
		return 0, true, false
	}
	v := binary.LittleEndian.Uint32(page[off:])
	return v, true, v != 0
}

// AriaIndexPageVersion gives the key version of an index page of an
// encrypted .MAI file (used false for a page on the free list or never
// written; ok false for a page in use with version 0).
func AriaIndexPageVersion(h AriaHeader, page []byte) (version uint32, used, ok bool) {
	// The header ends with the key version, key nr, flag and bytes used;
	// before them a transactional table has its LSN (7 bytes) and a
	// transaction id (6), a non-transactional one a random 7-byte counter.
	hdr := 7 + ariaKeyPageFixed
	if h.Transactional {
		hdr = 7 + 6 + ariaKeyPageFixed
	}
	// Any other key number counts (a fulltext index's second-level
	// pages carry their own): a version of a page in use is never left
	// out.
	if allZero(page[:hdr]) || page[hdr-4] == ariaDeletedKeyPage {
		return 0, false, true
	}
	v := binary.LittleEndian.Uint32(page[hdr-ariaKeyPageFixed:])
	return v, true, v != 0
}

// AriaTable is what the files of one Aria table (.MAI index, .MAD data)
// need.
type AriaTable struct {
	// File is the data file (.MAD); its .MAI is beside it.
	File      string         `json:"file"`
	Encrypted bool           `json:"encrypted"`
	KeyID     uint32         `json:"key_id,omitempty"`
	Versions  []VersionCount `json:"key_versions"`
	Pages     int            `json:"pages"`
	// Unreadable are pages whose header does not look like Aria's
	// (read while the server wrote them, or damaged).
	Unreadable int    `json:"unreadable_pages"`
	Error      string `json:"error,omitempty"`
}

// ariaFiles lists the .MAI files one directory down from dir (the tables
// of each database).
func ariaFiles(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "*", "*.MAI"))
	if err != nil {
		return nil, fmt.Errorf("listing the Aria tables: %w", err)
	}
	return m, nil
}

// ariaHeaderRead is how much of a .MAI file its header is read from.
const ariaHeaderRead = 4096

// parseAriaFile reads and parses the header of an open .MAI file.
func parseAriaFile(f *os.File, path string) (AriaHeader, error) {
	head := make([]byte, ariaHeaderRead)
	n, err := f.ReadAt(head, 0)
	if n == 0 && err != nil {
		return AriaHeader{}, fmt.Errorf("reading %s: %w", path, err)
	}
	h, err := ParseAriaHeader(head[:n])
	if err != nil {
		return h, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// readAriaHeader reads the header of a .MAI file (what the plugin checks
// at start).
func readAriaHeader(path string) (AriaHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return AriaHeader{}, err
	}
	defer f.Close()
	return parseAriaFile(f, path)
}

// ReadAriaTable reads an Aria table's .MAI header and, if it is
// encrypted, every page of its .MAI and .MAD files for their key
// versions. index is the .MAI path.
func ReadAriaTable(ctx context.Context, index string) (AriaTable, error) {
	data := strings.TrimSuffix(index, ".MAI") + ".MAD"
	t := AriaTable{File: data, Versions: []VersionCount{}}
	f, err := os.Open(index)
	if err != nil {
		return t, fmt.Errorf("reading the Aria table: %w", err)
	}
	defer f.Close()
	h, err := parseAriaFile(f, index)
	if err != nil {
		return t, err
	}
	if !h.Encrypted || !h.BlockRecord {
		return t, nil
	}
	t.Encrypted, t.KeyID = true, h.KeyID
	counts := map[uint32]int{}
	count := func(v uint32, used, ok bool) {
		switch {
		case !ok:
			t.Pages++
			t.Unreadable++
		case used:
			t.Pages++
			counts[v]++
		}
	}
	err = eachPage(ctx, f, h.KeyStart, h.BlockSize, func(_ int64, p []byte) {
		count(AriaIndexPageVersion(h, p))
	})
	if err != nil {
		return t, fmt.Errorf("reading %s: %w", index, err)
	}
	d, err := os.Open(data)
	if err != nil {
		return t, fmt.Errorf("reading the Aria table: %w", err)
	}
	defer d.Close()
	err = eachPage(ctx, d, 0, h.BlockSize, func(no int64, p []byte) {
		count(AriaDataPageVersion(h, no, p))
	})
	if err != nil {
		return t, fmt.Errorf("reading %s: %w", data, err)
	}
	t.Versions = sortedCounts(counts)
	return t, nil
}
