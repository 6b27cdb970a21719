package keyops

import (
	"fmt"
	"strings"

	"github.com/mariadb-go/aws_key_management/internal/datafiles"
	"github.com/mariadb-go/aws_key_management/internal/keyfile"
)

// Missing is a key version the data files need whose key file is not in
// the key directory: the data encrypted with it cannot be read.
type Missing struct {
	KeyID   uint32   `json:"key_id"`
	Version uint32   `json:"key_version"`
	File    string   `json:"file"` // the key file that is missing
	UsedBy  []string `json:"used_by"`
	Message string   `json:"message"`
}

// DataCheck is the data files of a directory checked against the key
// files: what they need and what is missing.
type DataCheck struct {
	*datafiles.Scan
	Missing []Missing `json:"missing"`
}

// CheckData compares what the data files need with the key files of the
// key directory (entries, as listed).
func CheckData(scan *datafiles.Scan, keyDir string, entries []keyfile.Entry) *DataCheck {
	have := map[[2]uint32]bool{}
	for _, e := range entries {
		have[[2]uint32{e.ID, e.Version}] = true
	}
	dc := &DataCheck{Scan: scan, Missing: []Missing{}}
	for _, u := range scan.Uses {
		if have[[2]uint32{u.KeyID, u.Version}] {
			continue
		}
		users := append([]string(nil), u.Files...)
		if u.MoreFiles > 0 {
			users = append(users, fmt.Sprintf("%d more", u.MoreFiles))
		}
		name := keyfile.Name(u.KeyID, u.Version)
		dc.Missing = append(dc.Missing, Missing{KeyID: u.KeyID, Version: u.Version, File: name, UsedBy: users,
			Message: fmt.Sprintf("%s in %s need %s (key %d version %d), which is not in %s: their data cannot be read without it; "+
				"copy it from where the backup was taken (the source server's datadir or aws_key_management_keyfile_dir, or the copy kept with the backup) into %s",
				strings.Join(users, ", "), scan.Directory, name, u.KeyID, u.Version, keyDir, keyDir)})
	}
	return dc
}
