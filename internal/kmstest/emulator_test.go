package kmstest

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

func arnOf(id string) string { return "arn:aws:kms:" + testRegion + ":" + testAcct + ":key/" + id }

func TestEveryOperation(t *testing.T) {
	t.Parallel()
	_, url := emu(t, Config{})
	c := client(t, url)
	cx := ctx(t)

	ck := must(c.CreateKey(cx, &kms.CreateKeyInput{Description: aws.String("first")})).ok(t)
	md := ck.KeyMetadata
	if md == nil || md.KeyId == nil || *md.Arn != arnOf(*md.KeyId) || !md.Enabled || md.KeyState != types.KeyStateEnabled ||
		md.KeySpec != types.KeySpecSymmetricDefault || md.KeyUsage != types.KeyUsageTypeEncryptDecrypt || md.CreationDate == nil {
		t.Fatalf("CreateKey metadata %+v", md)
	}
	if time.Since(*md.CreationDate) > time.Minute || *md.AWSAccountId != testAcct {
		t.Fatalf("CreationDate %v account %v", md.CreationDate, *md.AWSAccountId)
	}
	if len(*md.KeyId) != 36 || strings.Count(*md.KeyId, "-") != 4 {
		t.Fatalf("key id %q does not look like a UUID", *md.KeyId)
	}
	id, arn := *md.KeyId, *md.Arn
	id2 := *must(c.CreateKey(cx, &kms.CreateKeyInput{})).ok(t).KeyMetadata.KeyId

	dk := must(c.DescribeKey(cx, &kms.DescribeKeyInput{KeyId: &id})).ok(t)
	if *dk.KeyMetadata.Arn != arn || *dk.KeyMetadata.Description != "first" {
		t.Fatalf("DescribeKey %+v", dk.KeyMetadata)
	}
	must(c.CreateAlias(cx, &kms.CreateAliasInput{AliasName: aws.String("alias/one"), TargetKeyId: &id})).ok(t)
	must(c.CreateAlias(cx, &kms.CreateAliasInput{AliasName: aws.String("alias/two"), TargetKeyId: aws.String(arnOf(id2))})).ok(t)

	lk := must(c.ListKeys(cx, &kms.ListKeysInput{})).ok(t)
	if len(lk.Keys) != 2 || *lk.Keys[0].KeyId != id || *lk.Keys[0].KeyArn != arn || lk.Truncated {
		t.Fatalf("ListKeys %+v", lk.Keys)
	}
	la := must(c.ListAliases(cx, &kms.ListAliasesInput{})).ok(t)
	if len(la.Aliases) != 2 || *la.Aliases[0].AliasName != "alias/one" || *la.Aliases[0].TargetKeyId != id ||
		*la.Aliases[0].AliasArn != "arn:aws:kms:"+testRegion+":"+testAcct+":alias/one" {
		t.Fatalf("ListAliases %+v", la.Aliases)
	}
	la = must(c.ListAliases(cx, &kms.ListAliasesInput{KeyId: &id2})).ok(t)
	if len(la.Aliases) != 1 || *la.Aliases[0].AliasName != "alias/two" {
		t.Fatalf("ListAliases for key 2: %+v", la.Aliases)
	}

	pt := []byte("the quick brown fox")
	enc := must(c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("alias/one"), Plaintext: pt})).ok(t)
	if *enc.KeyId != arn || enc.EncryptionAlgorithm != types.EncryptionAlgorithmSpecSymmetricDefault {
		t.Fatalf("Encrypt KeyId %q", *enc.KeyId)
	}
	dec := must(c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})).ok(t)
	if !bytes.Equal(dec.Plaintext, pt) || *dec.KeyId != arn {
		t.Fatalf("Decrypt %q under %q", dec.Plaintext, *dec.KeyId)
	}

	for _, spec := range []struct {
		ks types.DataKeySpec
		nb *int32
		n  int
	}{{types.DataKeySpecAes256, nil, 32}, {types.DataKeySpecAes128, nil, 16}, {"", aws.Int32(7), 7}, {"", aws.Int32(1024), 1024}} {
		gd := must(c.GenerateDataKey(cx, &kms.GenerateDataKeyInput{KeyId: &id, KeySpec: spec.ks, NumberOfBytes: spec.nb})).ok(t)
		if len(gd.Plaintext) != spec.n || *gd.KeyId != arn {
			t.Fatalf("GenerateDataKey %v: %d bytes under %s", spec, len(gd.Plaintext), *gd.KeyId)
		}
		back := must(c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: gd.CiphertextBlob, KeyId: &id})).ok(t)
		if !bytes.Equal(back.Plaintext, gd.Plaintext) {
			t.Fatal("data key does not decrypt to its plaintext")
		}
	}
	gw := must(c.GenerateDataKeyWithoutPlaintext(cx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String("alias/two"), KeySpec: types.DataKeySpecAes256})).ok(t)
	if *gw.KeyId != arnOf(id2) {
		t.Fatalf("GenerateDataKeyWithoutPlaintext KeyId %q", *gw.KeyId)
	}
	if back := must(c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: gw.CiphertextBlob})).ok(t); len(back.Plaintext) != 32 {
		t.Fatalf("data key of %d bytes", len(back.Plaintext))
	}

	// ReEncrypt to the other key, then the blob opens only as that key's.
	re := must(c.ReEncrypt(cx, &kms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, DestinationKeyId: aws.String("alias/two")})).ok(t)
	if *re.SourceKeyId != arn || *re.KeyId != arnOf(id2) {
		t.Fatalf("ReEncrypt %s -> %s", *re.SourceKeyId, *re.KeyId)
	}
	dec = must(c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: re.CiphertextBlob})).ok(t)
	if !bytes.Equal(dec.Plaintext, pt) || *dec.KeyId != arnOf(id2) {
		t.Fatalf("Decrypt of re-encrypted blob: %q under %s", dec.Plaintext, *dec.KeyId)
	}
	_, err := c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: re.CiphertextBlob, KeyId: &id})
	wantCode(t, err, "IncorrectKeyException")
}

func TestKeyIDForms(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	arn := s.CreateKey("1234abcd-12ab-34cd-56ef-1234567890ab", "alias/app")
	c := client(t, url)
	cx := ctx(t)
	forms := []string{
		"1234abcd-12ab-34cd-56ef-1234567890ab",
		arn,
		"alias/app",
		"arn:aws:kms:" + testRegion + ":" + testAcct + ":alias/app",
	}
	for _, f := range forms {
		dk, err := c.DescribeKey(cx, &kms.DescribeKeyInput{KeyId: aws.String(f)})
		if err != nil || *dk.KeyMetadata.Arn != arn {
			t.Fatalf("DescribeKey %q: %v", f, err)
		}
		enc, err := c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String(f), Plaintext: []byte("x")})
		if err != nil || *enc.KeyId != arn {
			t.Fatalf("Encrypt %q: %v", f, err)
		}
		if _, err := c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, KeyId: aws.String(f)}); err != nil {
			t.Fatalf("Decrypt with KeyId %q: %v", f, err)
		}
		gd, err := c.GenerateDataKeyWithoutPlaintext(cx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(f), KeySpec: types.DataKeySpecAes128})
		if err != nil || *gd.KeyId != arn {
			t.Fatalf("GenerateDataKeyWithoutPlaintext %q: %v", f, err)
		}
	}
	missing := []struct{ in, msg string }{
		{"0000abcd-12ab-34cd-56ef-1234567890ab", "Key '" + arnOf("0000abcd-12ab-34cd-56ef-1234567890ab") + "' does not exist"},
		{arnOf("nope"), "Key '" + arnOf("nope") + "' does not exist"},
		{strings.Replace(arn, testRegion, "us-west-2", 1), "Key '" + strings.Replace(arn, testRegion, "us-west-2", 1) + "' does not exist"},
		{"alias/none", "Alias arn:aws:kms:" + testRegion + ":" + testAcct + ":alias/none is not found."},
		{"arn:aws:kms:" + testRegion + ":" + testAcct + ":alias/none", "Alias arn:aws:kms:" + testRegion + ":" + testAcct + ":alias/none is not found."},
	}
	for _, m := range missing {
		_, err := c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String(m.in), Plaintext: []byte("x")})
		if ae := wantCode(t, err, "NotFoundException"); ae.ErrorMessage() != m.msg {
			t.Errorf("%q: message %q, want %q", m.in, ae.ErrorMessage(), m.msg)
		}
	}
}

func TestDisabledKey(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	arn := s.CreateKey("k1", "alias/k1")
	s.CreateKey("k2")
	c := client(t, url)
	cx := ctx(t)
	blob := must(c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k1"), Plaintext: []byte("secret")})).ok(t).CiphertextBlob
	blob2 := must(c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k2"), Plaintext: []byte("secret")})).ok(t).CiphertextBlob

	must(c.DisableKey(cx, &kms.DisableKeyInput{KeyId: aws.String("alias/k1")})).ok(t)
	md := must(c.DescribeKey(cx, &kms.DescribeKeyInput{KeyId: aws.String("k1")})).ok(t).KeyMetadata
	if md.Enabled || md.KeyState != types.KeyStateDisabled {
		t.Fatalf("after DisableKey: %+v", md)
	}
	calls := map[string]func() error{
		"Encrypt": func() error {
			_, err := c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k1"), Plaintext: []byte("x")})
			return err
		},
		"Decrypt": func() error {
			_, err := c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob})
			return err
		},
		"ReEncrypt from": func() error {
			_, err := c.ReEncrypt(cx, &kms.ReEncryptInput{CiphertextBlob: blob, DestinationKeyId: aws.String("k2")})
			return err
		},
		"ReEncrypt to": func() error {
			_, err := c.ReEncrypt(cx, &kms.ReEncryptInput{CiphertextBlob: blob2, DestinationKeyId: aws.String("k1")})
			return err
		},
		"GenerateDataKey": func() error {
			_, err := c.GenerateDataKey(cx, &kms.GenerateDataKeyInput{KeyId: aws.String("k1"), KeySpec: types.DataKeySpecAes256})
			return err
		},
		"GenerateDataKeyWithoutPlaintext": func() error {
			_, err := c.GenerateDataKeyWithoutPlaintext(cx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String("k1"), NumberOfBytes: aws.Int32(8)})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		var de *types.DisabledException
		if !errors.As(err, &de) {
			t.Fatalf("%s on a disabled key: %v", name, err)
		}
		if ae := wantCode(t, err, "DisabledException"); ae.ErrorMessage() != arn+" is disabled." {
			t.Errorf("%s: message %q", name, ae.ErrorMessage())
		}
	}
	must(c.EnableKey(cx, &kms.EnableKeyInput{KeyId: aws.String(arn)})).ok(t)
	for name, call := range calls {
		if err := call(); err != nil {
			t.Fatalf("%s after EnableKey: %v", name, err)
		}
	}

	// disable= in the fault language acts the same way.
	if err := s.SetFaults("disable=k2"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob2})
	wantCode(t, err, "DisabledException")
}

func TestEncryptionContext(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	s.CreateKey("k")
	c := client(t, url)
	cx := ctx(t)
	ec := map[string]string{"table": "t1", "db": "d"}
	blob := must(c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("pt"), EncryptionContext: ec})).ok(t).CiphertextBlob
	for _, bad := range []map[string]string{nil, {"table": "t1"}, {"table": "t2", "db": "d"}, {"table": "t1", "db": "d", "x": ""}, {"tabled": "1", "b": "d"}} {
		_, err := c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: bad})
		wantCode(t, err, "InvalidCiphertextException")
	}
	got := must(c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"db": "d", "table": "t1"}})).ok(t)
	if string(got.Plaintext) != "pt" {
		t.Fatal(got.Plaintext)
	}
	// ReEncrypt needs the source context and sets the destination one.
	_, err := c.ReEncrypt(cx, &kms.ReEncryptInput{CiphertextBlob: blob, DestinationKeyId: aws.String("k")})
	wantCode(t, err, "InvalidCiphertextException")
	re := must(c.ReEncrypt(cx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: ec, DestinationKeyId: aws.String("k"),
		DestinationEncryptionContext: map[string]string{"v": "2"}})).ok(t)
	_, err = c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: re.CiphertextBlob, EncryptionContext: ec})
	wantCode(t, err, "InvalidCiphertextException")
	must(c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: re.CiphertextBlob, EncryptionContext: map[string]string{"v": "2"}})).ok(t)
	// Data keys carry their context too.
	gd := must(c.GenerateDataKey(cx, &kms.GenerateDataKeyInput{KeyId: aws.String("k"), KeySpec: types.DataKeySpecAes128, EncryptionContext: ec})).ok(t)
	_, err = c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: gd.CiphertextBlob})
	wantCode(t, err, "InvalidCiphertextException")
}

func TestTamperedAndForeignBlobs(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	s.CreateKey("key-a")
	s.CreateKey("key-b")
	c := client(t, url)
	cx := ctx(t)
	blob := must(c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("key-a"), Plaintext: []byte("hello")})).ok(t).CiphertextBlob
	for i := range blob {
		bad := append([]byte(nil), blob...)
		bad[i] ^= 0x01
		_, err := c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: bad})
		wantCode(t, err, "InvalidCiphertextException")
	}
	// The same key id length but another key: the header is authenticated.
	swapped := bytes.Replace(append([]byte(nil), blob...), []byte("key-a"), []byte("key-b"), 1)
	_, err := c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: swapped})
	wantCode(t, err, "InvalidCiphertextException")
	for _, garbage := range [][]byte{[]byte("x"), blob[:len(blob)-1], blob[:20], append(append([]byte(nil), blob...), 0), bytes.Repeat([]byte{0xff}, 100)} {
		_, err := c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: garbage})
		wantCode(t, err, "InvalidCiphertextException")
	}
	_, err = c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String("key-b")})
	if ae := wantCode(t, err, "IncorrectKeyException"); !strings.Contains(ae.ErrorMessage(), "does not identify") {
		t.Errorf("IncorrectKeyException message %q", ae.ErrorMessage())
	}
	_, err = c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String("key-c")})
	wantCode(t, err, "NotFoundException")
}

func TestBlobNeverHoldsPlaintext(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	s.CreateKey("k")
	c := client(t, url)
	cx := ctx(t)
	pt := []byte("PLAINTEXT-MARKER-0123456789-PLAINTEXT-MARKER-abcdefghijklmnop")
	blob := must(c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: pt})).ok(t).CiphertextBlob
	if !bytes.HasPrefix(blob, []byte("EMUKMS01")) {
		t.Fatalf("blob starts %q", blob[:8])
	}
	for i := 0; i+6 <= len(pt); i++ {
		if bytes.Contains(blob, pt[i:i+6]) {
			t.Fatalf("blob holds plaintext bytes %q", pt[i:i+6])
		}
	}
	if err := s.SetFaults("datakey=" + strings.Repeat("ab", 32)); err != nil {
		t.Fatal(err)
	}
	gd := must(c.GenerateDataKey(cx, &kms.GenerateDataKeyInput{KeyId: aws.String("k"), KeySpec: types.DataKeySpecAes256})).ok(t)
	if bytes.Contains(gd.CiphertextBlob, gd.Plaintext[:8]) {
		t.Fatal("data key blob holds the data key")
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	s.CreateKey("k", "alias/k")
	c := client(t, url)
	cx := ctx(t)
	_, err := c.GenerateDataKey(cx, &kms.GenerateDataKeyInput{KeyId: aws.String("k")})
	wantCode(t, err, "ValidationException")
	_, err = c.GenerateDataKey(cx, &kms.GenerateDataKeyInput{KeyId: aws.String("k"), KeySpec: types.DataKeySpecAes256, NumberOfBytes: aws.Int32(32)})
	wantCode(t, err, "ValidationException")
	_, err = c.GenerateDataKeyWithoutPlaintext(cx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String("k"), NumberOfBytes: aws.Int32(1025)})
	wantCode(t, err, "ValidationException")
	_, err = c.GenerateDataKeyWithoutPlaintext(cx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String("k"), KeySpec: "AES_512"})
	wantCode(t, err, "ValidationException")
	_, err = c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: make([]byte, 4097)})
	wantCode(t, err, "ValidationException")
	must(c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: make([]byte, 4096)})).ok(t)
	_, err = c.CreateAlias(cx, &kms.CreateAliasInput{AliasName: aws.String("alias/k"), TargetKeyId: aws.String("k")})
	wantCode(t, err, "AlreadyExistsException")
	_, err = c.CreateAlias(cx, &kms.CreateAliasInput{AliasName: aws.String("alias/k2"), TargetKeyId: aws.String("alias/k")})
	wantCode(t, err, "ValidationException")
	_, err = c.CreateKey(cx, &kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify})
	wantCode(t, err, "UnsupportedOperationException")
	_, err = c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x"), DryRun: aws.Bool(true)})
	wantCode(t, err, "DryRunOperationException")
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	for _, id := range []string{"a", "b", "c"} {
		s.CreateKey(id, "alias/"+id)
	}
	c := client(t, url)
	cx := ctx(t)
	var ids []string
	var marker *string
	for i := 0; i < 10; i++ {
		out := must(c.ListKeys(cx, &kms.ListKeysInput{Limit: aws.Int32(2), Marker: marker})).ok(t)
		for _, k := range out.Keys {
			ids = append(ids, *k.KeyId)
		}
		if !out.Truncated {
			break
		}
		marker = out.NextMarker
	}
	if strings.Join(ids, ",") != "a,b,c" {
		t.Fatalf("paged ListKeys: %v", ids)
	}
	p := kms.NewListAliasesPaginator(c, &kms.ListAliasesInput{Limit: aws.Int32(1)})
	n := 0
	for i := 0; p.HasMorePages() && i < 10; i++ {
		n += len(must(p.NextPage(cx)).ok(t).Aliases)
	}
	if n != 3 {
		t.Fatalf("paged ListAliases: %d", n)
	}
	_, err := c.ListKeys(cx, &kms.ListKeysInput{Marker: aws.String("bogus")})
	wantCode(t, err, "InvalidMarkerException")
}

func TestRestartWithSameSeed(t *testing.T) {
	t.Parallel()
	seed := []byte("a fixed seed for the restart test")
	s1, url1 := emu(t, Config{Seed: seed})
	s1.CreateKey("persistent", "alias/p")
	cx := ctx(t)
	blob := must(client(t, url1).Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("alias/p"), Plaintext: []byte("survives")})).ok(t).CiphertextBlob

	s2, url2 := emu(t, Config{Seed: seed})
	s2.CreateKey("persistent")
	got := must(client(t, url2).Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob})).ok(t)
	if string(got.Plaintext) != "survives" {
		t.Fatalf("after restart: %q", got.Plaintext)
	}
	s3, url3 := emu(t, Config{Seed: []byte("another seed")})
	s3.CreateKey("persistent")
	_, err := client(t, url3).Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob})
	wantCode(t, err, "InvalidCiphertextException")
	s4, url4 := emu(t, Config{Seed: seed})
	_, err = client(t, url4).Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob}) // key not there
	wantCode(t, err, "InvalidCiphertextException")
	_ = s4
}

func TestThrottlingRetriedByStandardRetryer(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	s.CreateKey("k")
	cx := ctx(t)
	blob := must(client(t, url).Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x")})).ok(t).CiphertextBlob
	if err := s.SetFaults("fail=Decrypt:ThrottlingException:2"); err != nil {
		t.Fatal(err)
	}
	// One attempt sees the 400 ThrottlingException itself.
	_, err := client(t, url).Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob})
	if wantCode(t, err, "ThrottlingException"); httpStatus(err) != 400 {
		t.Fatalf("ThrottlingException with HTTP %d", httpStatus(err))
	}
	if err := s.SetFaults("fail=Decrypt:ThrottlingException:2"); err != nil {
		t.Fatal(err)
	}
	s.ResetCalls()
	got, err := client(t, url, withRetries).Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob})
	if err != nil || string(got.Plaintext) != "x" {
		t.Fatalf("standard retryer: %v", err)
	}
	if n := s.Calls()["Decrypt"]; n != 3 {
		t.Fatalf("Decrypt called %d times, want 3", n)
	}
}

func TestInternalErrorRetriedThenFails(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	s.CreateKey("k")
	cx := ctx(t)
	blob := must(client(t, url).Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x")})).ok(t).CiphertextBlob
	if err := s.SetFaults("fail=Decrypt:KMSInternalException"); err != nil {
		t.Fatal(err)
	}
	_, err := client(t, url, withRetries).Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob})
	var ie *types.KMSInternalException
	if !errors.As(err, &ie) || httpStatus(err) != 500 {
		t.Fatalf("want KMSInternalException with HTTP 500, got %v (HTTP %d)", err, httpStatus(err))
	}
	wantCode(t, err, "KMSInternalException")
	if n := s.Calls()["Decrypt"]; n != 3 {
		t.Fatalf("Decrypt called %d times, want 3", n)
	}
	// Other operations are untouched; "*" reaches them all.
	must(client(t, url).Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x")})).ok(t)
	if err := s.SetFaults("fail=*:DependencyTimeoutException:1"); err != nil {
		t.Fatal(err)
	}
	_, err = client(t, url).Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x")})
	if wantCode(t, err, "DependencyTimeoutException"); httpStatus(err) != 500 {
		t.Fatalf("DependencyTimeoutException with HTTP %d", httpStatus(err))
	}
	must(client(t, url).Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x")})).ok(t)
}

func TestDropConnection(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	s.CreateKey("k")
	cx := ctx(t)
	if err := s.SetFaults("fail=GenerateDataKeyWithoutPlaintext:DropConnection"); err != nil {
		t.Fatal(err)
	}
	in := &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String("k"), KeySpec: types.DataKeySpecAes256}
	_, err := client(t, url).GenerateDataKeyWithoutPlaintext(cx, in)
	if err == nil {
		t.Fatal("dropped connection gave an answer")
	}
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) {
		t.Fatalf("dropped connection gave an API error: %v", err)
	}
	if n := s.Calls()["GenerateDataKeyWithoutPlaintext"]; n != 1 {
		t.Fatalf("%d calls", n)
	}
	// A connection error is retried by the standard retryer.
	if err := s.SetFaults("fail=GenerateDataKeyWithoutPlaintext:DropConnection:1"); err != nil {
		t.Fatal(err)
	}
	s.ResetCalls()
	must(client(t, url, withRetries).GenerateDataKeyWithoutPlaintext(cx, in)).ok(t)
	if n := s.Calls()["GenerateDataKeyWithoutPlaintext"]; n != 2 {
		t.Fatalf("%d calls, want 2", n)
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	var log lockedBuffer
	s, url := emu(t, Config{Log: &log})
	s.CreateKey("k")
	c := client(t, url)
	cx := ctx(t)
	if err := s.SetFaults("delay=Encrypt:1000; delay=Decrypt:20000"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	blob := must(c.Encrypt(cx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x")})).ok(t).CiphertextBlob
	if d := time.Since(start); d < time.Second {
		t.Fatalf("Encrypt took %v despite delay=Encrypt:1000", d)
	}
	start = time.Now()
	must(c.DescribeKey(cx, &kms.DescribeKeyInput{KeyId: aws.String("k")})).ok(t)
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("DescribeKey took %v with no delay of its own", d)
	}
	short, cancel := context.WithTimeout(cx, 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err := c.Decrypt(short, &kms.DecryptInput{CiphertextBlob: blob})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the deadline, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancelled call took %v", d)
	}
	// The handler noticed the client left: it ends (and logs the request
	// as cancelled, with no status) at once, not when the 20 s delay is
	// over.
	canceled := regexp.MustCompile(`(?m)^\S+ op=Decrypt key=\S+ status=- error=RequestCanceled dur=(\S+)$`)
	var m []string
	for wait := time.Now().Add(time.Second); m == nil && time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
		m = canceled.FindStringSubmatch(log.String())
	}
	if m == nil {
		t.Fatalf("no 'op=Decrypt ... status=- error=RequestCanceled' line within 1 s of the client giving up (%v after the call); log:\n%s",
			time.Since(start), log.String())
	}
	if d, err := time.ParseDuration(m[1]); err != nil || d > 5*time.Second {
		t.Fatalf("the cancelled Decrypt's handler ran %s (%v)", m[1], err)
	}
	if err := s.SetFaults(""); err != nil {
		t.Fatal(err)
	}
	must(c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: blob})).ok(t)
}

func TestDataKeyFault(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	s.CreateKey("k")
	c := client(t, url)
	cx := ctx(t)
	hexKey := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	if err := s.SetFaults("datakey=" + hexKey); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 32)
	for i := range want {
		want[i] = byte(i)
	}
	gd := must(c.GenerateDataKey(cx, &kms.GenerateDataKeyInput{KeyId: aws.String("k"), KeySpec: types.DataKeySpecAes256})).ok(t)
	if !bytes.Equal(gd.Plaintext, want) {
		t.Fatalf("GenerateDataKey plaintext %x", gd.Plaintext)
	}
	gd = must(c.GenerateDataKey(cx, &kms.GenerateDataKeyInput{KeyId: aws.String("k"), KeySpec: types.DataKeySpecAes128})).ok(t)
	if !bytes.Equal(gd.Plaintext, want[:16]) {
		t.Fatalf("AES_128 plaintext %x", gd.Plaintext)
	}
	gd = must(c.GenerateDataKey(cx, &kms.GenerateDataKeyInput{KeyId: aws.String("k"), NumberOfBytes: aws.Int32(40)})).ok(t)
	if !bytes.Equal(gd.Plaintext, append(append([]byte(nil), want...), make([]byte, 8)...)) {
		t.Fatalf("40-byte plaintext %x", gd.Plaintext)
	}
	gw := must(c.GenerateDataKeyWithoutPlaintext(cx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String("k"), KeySpec: types.DataKeySpecAes256})).ok(t)
	if got := must(c.Decrypt(cx, &kms.DecryptInput{CiphertextBlob: gw.CiphertextBlob})).ok(t).Plaintext; !bytes.Equal(got, want) {
		t.Fatalf("GenerateDataKeyWithoutPlaintext sealed %x", got)
	}
}

func TestFaultSpecs(t *testing.T) {
	t.Parallel()
	s, url := emu(t, Config{})
	s.CreateKey("k")
	for _, bad := range []string{"fail=Bogus:X", "fail=Encrypt", "fail=Encrypt:X:0", "delay=ListKeys:abc", "delay=Nope:10", "what=ever", "datakey=zz"} {
		if err := s.SetFaults(bad); err == nil {
			t.Errorf("SetFaults(%q) accepted", bad)
		}
	}
	if err := s.SetFaults("fail=ListKeys:Bogus"); err != nil {
		t.Fatal(err)
	}
	c := client(t, url)
	cx := ctx(t)
	_, err := c.ListKeys(cx, &kms.ListKeysInput{})
	if ae := wantCode(t, err, "Bogus"); !strings.Contains(ae.ErrorMessage(), "injected") {
		t.Errorf("message %q", ae.ErrorMessage())
	}
	if err := s.SetFaults("fail=Encrypt:AccessDeniedException:1; fail=Encrypt:LimitExceededException:1"); err != nil {
		t.Fatal(err)
	}
	in := &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x")}
	_, err = c.Encrypt(cx, in)
	wantCode(t, err, "AccessDeniedException")
	_, err = c.Encrypt(cx, in)
	wantCode(t, err, "LimitExceededException")
	must(c.Encrypt(cx, in)).ok(t)
	if n := s.Calls()["Encrypt"]; n != 3 {
		t.Fatalf("Encrypt calls %d, want 3 (failed calls count)", n)
	}
}
