package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/kmstest"
)

// keyFlags collects repeated -key ID[=alias/a,alias/b].
type keyFlags []string

func (k *keyFlags) String() string     { return strings.Join(*k, " ") }
func (k *keyFlags) Set(v string) error { *k = append(*k, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kms-emulator:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("kms-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback `address` to listen on")
	portFile := fs.String("port-file", "", "write \"HOST:PORT\\n\" to this `file` once listening (atomically)")
	region := fs.String("region", kmstest.DefaultRegion, "AWS `region` of the emulator")
	account := fs.String("account", kmstest.DefaultAccountID, "AWS account `id` in ARNs")
	akid := fs.String("access-key-id", kmstest.DefaultAccessKeyID, "the access key `id` accepted")
	secret := fs.String("secret-access-key", kmstest.DefaultSecretAccessKey, "the secret access `key` accepted")
	token := fs.String("session-token", "", "if set, requests must carry this session `token`")
	seedHex := fs.String("seed", "", "`hex` seed of the key material (empty: random, blobs die with the process)")
	logPath := fs.String("log", "", "request log `file` (default: stderr)")
	quota := fs.Float64("quota", 0, "shared request quota in `requests/s` across all clients (0: none); over it: ThrottlingException")
	latency := fs.Duration("latency", 0, "added to every KMS call that is not throttled (e.g. 20ms)")
	maxLife := fs.Duration("max-lifetime", 2*time.Hour, "exit by itself after this `duration`")
	requireMFA := fs.Bool("require-mfa", false, "key policy: Encrypt, Decrypt, ReEncrypt and GenerateDataKey* need MFA session credentials (STS GetSessionToken with a code)")
	var keys, mfaDevices keyFlags
	fs.Var(&keys, "key", "create key `ID[=alias/a,alias/b]` at start (repeatable)")
	fs.Var(&mfaDevices, "mfa-device", "virtual MFA device `SERIAL=CODE` for STS GetSessionToken: the six-digit code it accepts (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *maxLife <= 0 {
		return errors.New("-max-lifetime must be positive")
	}
	if err := loopbackOnly(*listen); err != nil {
		return err
	}
	seed, err := hex.DecodeString(*seedHex)
	if err != nil {
		return fmt.Errorf("-seed: %v", err)
	}
	var logw io.Writer = stderr
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		logw = f
	}
	emu := kmstest.New(kmstest.Config{
		Region: *region, AccountID: *account,
		AccessKeyID: *akid, SecretAccessKey: *secret, SessionToken: *token,
		Seed: seed, Log: logw, RequireMFA: *requireMFA,
	})
	for _, d := range mfaDevices {
		serial, code, ok := strings.Cut(d, "=")
		if !ok {
			return fmt.Errorf("-mfa-device %q: want SERIAL=CODE", d)
		}
		if err := emu.SetMFADevice(serial, code); err != nil {
			return fmt.Errorf("-mfa-device: %w", err)
		}
	}
	if err := emu.SetLimits(kmstest.Limits{Quota: *quota, Latency: *latency}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := createKey(emu, k); err != nil {
			return err
		}
	}

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	if *portFile != "" {
		if err := writeAtomic(*portFile, addr+"\n"); err != nil {
			srv.Close()
			return err
		}
	}
	fmt.Fprintf(stderr, "kms-emulator: listening on http://%s (region %s), pid %d\n", addr, *region, os.Getpid())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	life := time.NewTimer(*maxLife)
	defer life.Stop()
	var why string
	select {
	case <-ctx.Done():
		why = "signal"
	case <-life.C:
		why = "max lifetime " + maxLife.String() + " reached"
	case err := <-served:
		return err
	}
	fmt.Fprintf(stderr, "kms-emulator: stopping (%s)\n", why)
	emu.Close() // answer injected delays now
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		srv.Close()
	}
	return nil
}

// loopbackOnly refuses any listen address but a loopback IP literal.
func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-listen %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q: refusing a non-loopback address; the emulator takes unsigned control requests and is for loopback tests only (use 127.0.0.1:PORT)", addr)
	}
	return nil
}

func createKey(emu *kmstest.Server, spec string) (err error) {
	id, list, _ := strings.Cut(spec, "=")
	var aliases []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			aliases = append(aliases, a)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("-key %q: %v", spec, r)
		}
	}()
	if id == "" {
		return fmt.Errorf("-key %q: want ID[=alias/a,alias/b]", spec)
	}
	emu.CreateKey(id, aliases...)
	return nil
}

// writeAtomic writes content to path through a temporary file in the same
// directory and a rename, so a reader never sees a partial file.
func writeAtomic(path, content string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".kms-emulator-port-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
