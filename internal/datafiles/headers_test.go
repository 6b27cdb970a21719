package datafiles

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// redoHeader builds a 10.8+ redo log header.
func redoHeader(format, keyID, version uint32) []byte {
	b := make([]byte, redoHeaderSize)
	binary.BigEndian.PutUint32(b, format)
	binary.BigEndian.PutUint64(b[8:], 12288)
	copy(b[16:], "MariaDB 10.11.19")
	binary.BigEndian.PutUint32(b[48:], keyID)
	binary.BigEndian.PutUint32(b[52:], version)
	copy(b[56:], "0123456789abcdefNONC")
	binary.BigEndian.PutUint32(b[508:], crc32.Checksum(b[:508], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// testdata reads a file written by a real mariadbd (see testdata/).
func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRedoLogHeader(t *testing.T) {
	real := func(name string) []byte { return testdata(t, name) }
	damaged := redoHeader(redoFormatEnc11, 1, 3)
	damaged[53] ^= 1 // the version changed after the checksum
	checkHeaders(t, []headerCase{
		// Written by mariadbd 10.11.19 (innodb_encrypt_log=ON, key 1
		// version 1) and without encryption.
		{"real encrypted (10.11.19)", real("ib_logfile0-enc11.header"), true, 1, ""},
		{"real plain (10.11.19)", real("ib_logfile0-plain.header"), false, 0, ""},
		{"FORMAT_ENC_11", redoHeader(redoFormatEnc11, 1, 7), true, 7, ""},
		{"FORMAT_ENC_10_8", redoHeader(redoFormatEnc108, 1, 2), true, 2, ""},
		{"FORMAT_10_8 with a key", redoHeader(redoFormat108, 1, 4), true, 4, ""},
		{"FORMAT_10_8", redoHeader(redoFormat108, 0, 0), false, 0, ""},
		{"checksum mismatch", damaged, false, 0, "checksum"},
		{"key id 2", redoHeader(redoFormatEnc11, 2, 1), false, 0, "names key id 2"},
		{"version 0", redoHeader(redoFormatEnc11, 1, 0), false, 0, "key version 0"},
		{"version invalid", redoHeader(redoFormatEnc11, 1, ^uint32(0)), false, 0, "key version 4294967295"},
		{"10.5 format", redoHeader(redoFormat105|redoEncrypted, 0, 0), false, 0, "before 10.8"},
		{"not a redo log", bytes.Repeat([]byte("x"), 512), false, 0, "not a redo log header"},
		{"short", redoHeader(redoFormatEnc11, 1, 1)[:100], false, 0, "100 bytes"},
	}, func(b []byte) (any, bool, uint32, error) {
		r, err := ParseRedoLogHeader(b)
		if err == nil && !strings.HasPrefix(r.Creator, "MariaDB 10.11") {
			err = errors.New("creator " + r.Creator)
		}
		return r, r.Encrypted, r.KeyVersion, err
	})
	if _, err := ParseRedoLogHeader(redoHeader(redoFormat105, 0, 0)); !errors.Is(err, ErrOldRedoFormat) {
		t.Errorf("10.5 format: %v", err)
	}
}

func TestReadRedoLog(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ib_logfile0")
	if err := os.WriteFile(p, append(redoHeader(redoFormatEnc11, 1, 9), make([]byte, 4096)...), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := ReadRedoLog(p)
	if err != nil || r.Path != p || r.KeyVersion != 9 {
		t.Fatalf("%+v, %v", r, err)
	}
	if _, err := ReadRedoLog(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "none") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(p, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRedoLog(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("short file: %v", err)
	}
}

// binlogStart builds the first events of a binary log: a format
// description (with checksum algorithm crc) and, if version > 0, a
// Start_encryption event.
func binlogStart(crc bool, version uint32) []byte {
	b := append([]byte{}, binlogMagic...)
	fdeLen := 19 + 2 + 50 + 4 + 1 + 1 + 5 // header, binlog version, server version, time, header len, type lengths, alg+crc
	ev := make([]byte, fdeLen)
	ev[4] = eventTypeFormatDesc
	binary.LittleEndian.PutUint32(ev[9:], uint32(fdeLen))
	if crc {
		ev[fdeLen-5] = binlogChecksumCRC32
	}
	b = append(b, ev...)
	if version == 0 {
		return b
	}
	n := 19 + 17
	if crc {
		n += 4
	}
	se := make([]byte, n)
	se[4] = eventTypeStartEncrypt
	binary.LittleEndian.PutUint32(se[9:], uint32(n))
	se[19] = 1
	binary.LittleEndian.PutUint32(se[20:], version)
	copy(se[24:], "nonce-nonce!")
	if crc {
		binary.LittleEndian.PutUint32(se[n-4:], crc32.ChecksumIEEE(se[:n-4]))
	}
	return append(b, se...)
}

func TestParseBinlogStart(t *testing.T) {
	real := func(name string) []byte { return testdata(t, name) }
	badCRC := binlogStart(true, 5)
	badCRC[len(badCRC)-1] ^= 0xff
	badScheme := binlogStart(false, 5)
	badScheme[len(badScheme)-17] = 2
	checkHeaders(t, []headerCase{
		// Written by mariadbd 10.11.19: encrypt_binlog=ON after a
		// rotation of key 1 (version 2), CRC32 checksums; and a plain
		// binlog with binlog_checksum=NONE.
		{"real encrypted (10.11.19)", real("binlog-encrypted-v2.start"), true, 2, ""},
		{"real plain, no checksums (10.11.19)", real("binlog-plain-nochecksum.start"), false, 0, ""},
		{"encrypted, CRC32", binlogStart(true, 3), true, 3, ""},
		{"encrypted, no checksums", binlogStart(false, 4), true, 4, ""},
		{"plain", binlogStart(true, 0), false, 0, ""},
		{"bad checksum", badCRC, false, 0, "checksum does not match"},
		{"bad scheme", badScheme, false, 0, "scheme 2"},
		{"empty", nil, false, 0, "not a binary log"},
		{"not a binlog", []byte("\xfebim" + strings.Repeat("x", 100)), false, 0, "not a binary log"},
		{"cut in the description", binlogStart(true, 3)[:40], false, 0, "not a format description"},
		{"cut in Start_encryption", binlogStart(true, 3)[:len(binlogStart(true, 3))-3], false, 0, "Start_encryption event has 40 bytes"},
	}, func(b []byte) (any, bool, uint32, error) {
		r, err := ParseBinlogStart(b)
		return r, r.Encrypted, r.KeyVersion, err
	})
}

type headerCase struct {
	name      string
	b         []byte
	encrypted bool
	version   uint32
	err       string // "": parses
}

// checkHeaders runs parse on each case.
func checkHeaders(t *testing.T, cases []headerCase, parse func([]byte) (any, bool, uint32, error)) {
	t.Helper()
	for _, c := range cases {
		r, encrypted, version, err := parse(c.b)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %+v, %v; want an error with %q", c.name, r, err, c.err)
			}
			continue
		}
		if err != nil || encrypted != c.encrypted || version != c.version {
			t.Errorf("%s: %+v, %v; want encrypted %v, version %d", c.name, r, err, c.encrypted, c.version)
		}
	}
}

func FuzzParseRedoLogHeader(f *testing.F) {
	f.Add(redoHeader(redoFormatEnc11, 1, 1))
	f.Add(redoHeader(redoFormat108, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRedoLogHeader(b)
		if err == nil && r.Encrypted && (r.KeyID != 1 || r.KeyVersion == 0 || r.KeyVersion == ^uint32(0)) {
			t.Fatalf("accepted %+v", r)
		}
	})
}

func FuzzParseBinlogStart(f *testing.F) {
	f.Add(binlogStart(true, 2))
	f.Add(binlogStart(false, 9))
	f.Add(binlogStart(true, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseBinlogStart(b)
		if err == nil && r.Encrypted && (r.KeyID != 1 || r.KeyVersion == 0 || r.KeyVersion == ^uint32(0)) {
			t.Fatalf("accepted %+v", r)
		}
	})
}
