package datafiles

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// A binary log (or relay log) file starts with the magic "\xfebin", a
// Format_description event and, with encrypt_binlog=ON, a
// Start_encryption event (sql/log_event.h; rpl_constants.h): after its
// 19-byte common header, the scheme (1 byte, always 1), the key version
// (4 bytes little-endian) and a nonce (12 bytes); then a CRC-32 of the
// event if the file has checksums. Every event after it is encrypted with
// that version of key 1 (ENCRYPTION_KEY_SYSTEM_DATA), so the version is
// needed as long as the file exists (replicas, mariadb-binlog through the
// server, point-in-time recovery).
const (
	binlogHeaderLen        = 19 // LOG_EVENT_HEADER_LEN
	eventTypeFormatDesc    = 0x0F
	eventTypeStartEncrypt  = 0xA4 // START_ENCRYPTION_EVENT (164)
	startEncryptBodyLen    = 1 + 4 + 12
	binlogChecksumCRC32    = 1
	binlogHeaderReadLength = 4096
)

var binlogMagic = []byte{0xfe, 'b', 'i', 'n'}

// Binlog is what the start of a binary or relay log file says about
// encryption.
type Binlog struct {
	Path       string `json:"file"`
	Encrypted  bool   `json:"encrypted"`
	KeyID      uint32 `json:"key_id,omitempty"` // 1 when encrypted
	KeyVersion uint32 `json:"key_version,omitempty"`
	// Error says why the file could not be read; the versions of key 1
	// are then kept.
	Error string `json:"error,omitempty"`
}

// ReadBinlog reads the start of a binary or relay log file.
func ReadBinlog(path string) (Binlog, error) {
	f, err := os.Open(path)
	if err != nil {
		return Binlog{}, err
	}
	defer f.Close()
	buf := make([]byte, binlogHeaderReadLength)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return Binlog{}, fmt.Errorf("reading %s: %w", path, err)
	}
	b, err := ParseBinlogStart(buf[:n])
	if err != nil {
		return Binlog{}, fmt.Errorf("%s: %w", path, err)
	}
	b.Path = path
	return b, nil
}

// ParseBinlogStart reads the first events of a binary log file.
func ParseBinlogStart(b []byte) (Binlog, error) {
	if len(b) < len(binlogMagic)+binlogHeaderLen || !bytes.Equal(b[:len(binlogMagic)], binlogMagic) {
		return Binlog{}, errors.New("not a binary log file (no \\xfebin magic and format description)")
	}
	fde := b[len(binlogMagic):]
	size := int(binary.LittleEndian.Uint32(fde[9:]))
	if fde[4] != eventTypeFormatDesc || size < binlogHeaderLen+5 || size > len(fde) {
		return Binlog{}, fmt.Errorf("the first event is not a format description (type %d, %d bytes)", fde[4], size)
	}
	// Binlog format 4: the description ends with the checksum algorithm
	// (1 byte) and its own checksum (4 bytes).
	crc := fde[size-5] == binlogChecksumCRC32
	next := fde[size:]
	if len(next) < binlogHeaderLen || next[4] != eventTypeStartEncrypt {
		// Written without encrypt_binlog (or just created and still
		// empty): no key is used.
		return Binlog{}, nil
	}
	evLen := int(binary.LittleEndian.Uint32(next[9:]))
	want := binlogHeaderLen + startEncryptBodyLen
	if crc {
		want += 4
	}
	if evLen != want || len(next) < evLen {
		return Binlog{}, fmt.Errorf("the Start_encryption event has %d bytes, want %d", evLen, want)
	}
	ev := next[:evLen]
	if crc && crc32.ChecksumIEEE(ev[:evLen-4]) != binary.LittleEndian.Uint32(ev[evLen-4:]) {
		return Binlog{}, errors.New("the Start_encryption event checksum does not match: damaged")
	}
	body := ev[binlogHeaderLen:]
	if body[0] != 1 {
		return Binlog{}, fmt.Errorf("binlog encryption scheme %d; MariaDB writes scheme 1", body[0])
	}
	kv := binary.LittleEndian.Uint32(body[1:])
	if kv == 0 || kv == ^uint32(0) {
		return Binlog{}, fmt.Errorf("the Start_encryption event has key version %d, not a valid one", kv)
	}
	return Binlog{Encrypted: true, KeyID: 1, KeyVersion: kv}, nil
}
