package keyops

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/mariadb-go/aws_key_management/internal/keyfile"
	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
	"github.com/mariadb-go/aws_key_management/internal/kmstest"
	"github.com/mariadb-go/aws_key_management/internal/ratelimit"
)

const (
	region = "eu-west-1"
	idA    = "0a0a0a0a-0000-4000-8000-00000000000a"
	idB    = "0b0b0b0b-0000-4000-8000-00000000000b"
	arnA   = "arn:aws:kms:" + region + ":111122223333:key/" + idA
	arnB   = "arn:aws:kms:" + region + ":111122223333:key/" + idB
)

// env is a loopback KMS with keys A (alias/old) and B (alias/new), the
// plugin's KMS client for it, and a directory of key files.
type env struct {
	t      *testing.T
	srv    *kmstest.Server
	url    string
	client *kmsbackend.Client
	dir    string
	store  *keyfile.Store
	// keys are the plaintext data keys, by file name, as first made.
	keys map[string][]byte
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv, ts, url := kmstest.Start(kmstest.Config{Region: region, AccessKeyID: "AKIAKEYOPSTEST", SecretAccessKey: "keyops-secret"})
	t.Cleanup(ts.Close)
	t.Cleanup(srv.Close)
	srv.CreateKey(idA, "alias/old")
	srv.CreateKey(idB, "alias/new")
	home := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIAKEYOPSTEST", "AWS_SECRET_ACCESS_KEY": "keyops-secret", "AWS_SESSION_TOKEN": "",
		"AWS_REGION": region, "AWS_DEFAULT_REGION": "", "AWS_PROFILE": "", "HOME": home,
		"AWS_CONFIG_FILE": filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(home, "none"),
		"AWS_CREDENTIAL_PROFILES_FILE": "", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	e := &env{t: t, srv: srv, url: url, dir: t.TempDir(), keys: map[string][]byte{}}
	e.client = e.newClient()
	e.store = keyfile.New(e.dir)
	return e
}

func (e *env) newClient() *kmsbackend.Client {
	// These tests are about the runner's own retries: a rate that never
	// paces (internal/ratelimit tests the pacing).
	l := ratelimit.NewLimiter(nil)
	l.Initial, l.Min = 1e6, 1e6
	c, err := kmsbackend.New(context.Background(), kmsbackend.Config{EndpointURL: e.url, RequestTimeout: 2 * time.Second, Limiter: l})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// create makes key files for ids 1..n, versions 1..v each, wrapped under
// master, alternating AES_128 and AES_256 keys.
func (e *env) create(n, v int, master string) {
	e.t.Helper()
	for id := 1; id <= n; id++ {
		for ver := 1; ver <= v; ver++ {
			spec := "AES_128"
			if (id+ver)%2 == 0 {
				spec = "AES_256"
			}
			e.createOne(uint32(id), uint32(ver), master, spec)
		}
	}
}

func (e *env) createOne(id, ver uint32, master, spec string) {
	e.t.Helper()
	blob, err := e.client.GenerateDataKeyWithoutPlaintext(context.Background(), master, spec)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.Create(id, ver, blob); err != nil {
		e.t.Fatal(err)
	}
	dst := make([]byte, 32)
	n, err := e.client.Decrypt(context.Background(), blob, dst)
	if err != nil {
		e.t.Fatal(err)
	}
	e.keys[keyfile.Name(id, ver)] = dst[:n]
}

// snapshot is every file of the directory tree with its content and mode.
func (e *env) snapshot() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(e.dir, p)
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[rel+"/"] = st.Mode().String()
			return nil
		}
		data, _ := os.ReadFile(p)
		out[rel] = st.Mode().String() + " " + st.ModTime().String() + " " + string(data)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) unchanged(before map[string]string) {
	e.t.Helper()
	after := e.snapshot()
	if len(after) != len(before) {
		e.t.Errorf("the directory changed: %d entries before, %d after: %v", len(before), len(after), names(after))
	}
	for k, v := range before {
		if after[k] != v {
			e.t.Errorf("%s changed", k)
		}
	}
}

func names(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkUnder checks that every key file unwraps to its first key under
// the KMS key arn, mode 0400.
func (e *env) checkUnder(arn string) {
	e.t.Helper()
	entries, err := e.store.Scan()
	if err != nil {
		e.t.Fatal(err)
	}
	if len(entries) != len(e.keys) {
		e.t.Fatalf("%d key files, want %d", len(entries), len(e.keys))
	}
	for _, en := range entries {
		name := keyfile.Name(en.ID, en.Version)
		blob, err := e.store.Read(en.ID, en.Version)
		if err != nil {
			e.t.Fatal(err)
		}
		dst := make([]byte, 32)
		n, got, err := e.client.DecryptWithKeyID(context.Background(), blob, dst)
		if err != nil || got != arn || !bytes.Equal(dst[:n], e.keys[name]) {
			e.t.Errorf("%s: unwraps under %q to the same key: %v (%v); want under %s", name, got, bytes.Equal(dst[:n], e.keys[name]), err, arn)
		}
		if st, _ := os.Stat(e.store.Path(en.ID, en.Version)); st.Mode().Perm() != keyfile.FileMode {
			e.t.Errorf("%s: mode %v", name, st.Mode())
		}
	}
}

// rawKMS is an SDK client for the emulator, for calls the plugin's client
// does not make (Encrypt of a key of any length).
func (e *env) rawKMS() *kms.Client {
	return kms.New(kms.Options{
		Region:       region,
		BaseEndpoint: aws.String(e.url),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAKEYOPSTEST", "keyops-secret", ""),
	})
}

// countingProgress records what a run reported.
type countingProgress struct {
	mu       sync.Mutex
	total    int
	added    int
	finished bool
}

func (p *countingProgress) Add(n int) { p.mu.Lock(); p.added += n; p.mu.Unlock() }
func (p *countingProgress) Finish()   { p.mu.Lock(); p.finished = true; p.mu.Unlock() }

func fastRunner(parallel int) *Runner {
	return &Runner{Parallel: parallel, Backoff: 10 * time.Millisecond}
}
