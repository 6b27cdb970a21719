package datafiles

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// The header of ib_logfile0 since MariaDB 10.8 (storage/innobase
// log0log.cc, log_t::header_write; log0crypt.cc, log_crypt_write_header):
//
//	0    format, 4 bytes big-endian
//	8    first LSN
//	16   creator, 32 bytes ("MariaDB 10.11.19", "Backup 10.11.19")
//	48   encryption key id, 4 bytes big-endian (always 1), 0 if not encrypted
//	52   encryption key version, 4 bytes big-endian
//	56   random message (16 bytes) and nonce (4 bytes)
//	508  CRC-32C of bytes 0..507, big-endian
//
// The key version is chosen when the log file is created and kept for its
// lifetime: at every start InnoDB unwraps exactly that version of key 1,
// so it must stay available as long as this log file exists.
const (
	redoFormat108    = 0x50687973 // FORMAT_10_8
	redoFormatEnc108 = 0xD0687973 // FORMAT_ENC_10_8
	redoFormatEnc11  = 0xF09F979D // FORMAT_ENC_11 (also written by 10.11.x)
	redoFormat105    = 0x50485953 // FORMAT_10_5
	redoEncrypted    = 1 << 31    // FORMAT_ENCRYPTED
	redoHeaderSize   = 512
	redoKeyIDOffset  = 48
	redoChecksumAt   = 508
)

// RedoLog is what the header of a redo log file says about encryption.
type RedoLog struct {
	Path      string `json:"file"`
	Creator   string `json:"creator"`
	Encrypted bool   `json:"encrypted"`
	// KeyID is always 1 (ENCRYPTION_KEY_SYSTEM_DATA) when encrypted.
	KeyID      uint32 `json:"key_id,omitempty"`
	KeyVersion uint32 `json:"key_version,omitempty"`
}

// ErrOldRedoFormat: a redo log written by MariaDB before 10.8, whose
// blocks each carry their own key version; this package does not read
// them (it would have to read the whole log).
var ErrOldRedoFormat = errors.New("redo log format of MariaDB before 10.8: each block has its own key version; not read")

// ReadRedoLog reads the header of a redo log file (ib_logfile0).
func ReadRedoLog(path string) (RedoLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return RedoLog{}, fmt.Errorf("reading the redo log header: %w", err)
	}
	defer f.Close()
	buf := make([]byte, redoHeaderSize)
	if _, err := io.ReadFull(f, buf); err != nil {
		return RedoLog{}, fmt.Errorf("reading the redo log header of %s: %w", path, err)
	}
	r, err := ParseRedoLogHeader(buf)
	if err != nil {
		return RedoLog{}, fmt.Errorf("%s: %w", path, err)
	}
	r.Path = path
	return r, nil
}

// ParseRedoLogHeader reads the first 512 bytes of a redo log file.
func ParseRedoLogHeader(b []byte) (RedoLog, error) {
	if len(b) < redoHeaderSize {
		return RedoLog{}, fmt.Errorf("redo log header of %d bytes, want %d", len(b), redoHeaderSize)
	}
	b = b[:redoHeaderSize]
	format := binary.BigEndian.Uint32(b)
	switch format {
	case redoFormat108, redoFormatEnc108, redoFormatEnc11:
	case redoFormat105, redoFormat105 | redoEncrypted, 103, 104, 104 | redoEncrypted, 1, 0:
		return RedoLog{}, ErrOldRedoFormat
	default:
		return RedoLog{}, fmt.Errorf("not a redo log header of MariaDB 10.8 or later (format 0x%08x)", format)
	}
	if want, got := binary.BigEndian.Uint32(b[redoChecksumAt:]), crc32.Checksum(b[:redoChecksumAt], crc32.MakeTable(crc32.Castagnoli)); want != got {
		return RedoLog{}, fmt.Errorf("redo log header checksum 0x%08x does not match its content (0x%08x): not a redo log, or damaged", want, got)
	}
	r := RedoLog{Creator: cString(b[16:redoKeyIDOffset])}
	keyID := binary.BigEndian.Uint32(b[redoKeyIDOffset:])
	if keyID == 0 && format == redoFormat108 {
		return r, nil
	}
	// The server reads the encryption header whenever the key id is set
	// or the format says encrypted (recv_sys_t::find_checkpoint).
	if keyID != 1 {
		return RedoLog{}, fmt.Errorf("redo log encryption header names key id %d; InnoDB writes key id 1", keyID)
	}
	r.Encrypted, r.KeyID, r.KeyVersion = true, keyID, binary.BigEndian.Uint32(b[redoKeyIDOffset+4:])
	if r.KeyVersion == 0 || r.KeyVersion == ^uint32(0) {
		return RedoLog{}, fmt.Errorf("redo log encryption header has key version %d, not a valid one", r.KeyVersion)
	}
	return r, nil
}

// cString is b up to its first NUL, printable ASCII only.
func cString(b []byte) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		out = append(out, c)
	}
	return string(out)
}
