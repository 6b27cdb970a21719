package keyops

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mariadb-go/aws_key_management/internal/datafiles"
	"github.com/mariadb-go/aws_key_management/internal/keyfile"
)

// What the data files need is compared with the key files: a version
// with no file (the latest of a key, a whole key id) is missing, named
// with the data files that need it; versions present are not.
func TestCheckData(t *testing.T) {
	scan := &datafiles.Scan{Directory: "/backup", Uses: []datafiles.Use{
		{KeyID: 1, Version: 1, Files: []string{"ib_logfile0"}},
		{KeyID: 5, Version: 3, Files: []string{"d/a.ibd", "d/b.ibd", "d/c.ibd", "d/d.ibd", "d/e.ibd"}, MoreFiles: 2},
		{KeyID: 6, Version: 1, Files: []string{"d/t6.ibd"}},
	}}
	entries := []keyfile.Entry{{ID: 1, Version: 1}, {ID: 5, Version: 1}, {ID: 5, Version: 2}}
	dc := CheckData(scan, "/keys", entries)
	var got []string
	for _, m := range dc.Missing {
		got = append(got, m.File+" <- "+strings.Join(m.UsedBy, ","))
	}
	want := []string{"aws-kms-key.5.3 <- d/a.ibd,d/b.ibd,d/c.ibd,d/d.ibd,d/e.ibd,2 more", "aws-kms-key.6.1 <- d/t6.ibd"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("missing: %q, want %q", got, want)
	}
	if m := dc.Missing[1].Message; m != "d/t6.ibd in /backup need aws-kms-key.6.1 (key 6 version 1), which is not in /keys: their data cannot be read without it; "+
		"copy it from where the backup was taken (the source server's datadir or aws_key_management_keyfile_dir, or the copy kept with the backup) into /keys" {
		t.Errorf("message: %q", m)
	}
	entries = append(entries, keyfile.Entry{ID: 5, Version: 3}, keyfile.Entry{ID: 6, Version: 1})
	if dc := CheckData(scan, "/keys", entries); len(dc.Missing) != 0 || dc.Missing == nil {
		t.Errorf("all present: %+v", dc.Missing)
	}
}
