package kmstest

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

type opFunc func(s *Server, info *reqInfo, body []byte) (any, *apiError)

// operations are the KMS operations the emulator answers, by the name
// X-Amz-Target gives after "TrentService.".
var operations = map[string]opFunc{
	"CreateKey":                       opCreateKey,
	"DescribeKey":                     opDescribeKey,
	"EnableKey":                       opEnableKey,
	"DisableKey":                      opDisableKey,
	"CreateAlias":                     opCreateAlias,
	"ListKeys":                        opListKeys,
	"ListAliases":                     opListAliases,
	"Encrypt":                         opEncrypt,
	"Decrypt":                         opDecrypt,
	"ReEncrypt":                       opReEncrypt,
	"GenerateDataKey":                 opGenerateDataKey,
	"GenerateDataKeyWithoutPlaintext": opGenerateDataKeyWithoutPlaintext,
}

const (
	symmetricDefault = "SYMMETRIC_DEFAULT"
	msgIncorrectKey  = "The key ID in the request does not identify a CMK that can perform this operation."
	msgDryRun        = "The request would have succeeded, but the DryRun option is set."
)

func decode(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		return newError("SerializationException", "Could not read the request body: %v", err)
	}
	return nil
}

func validationf(format string, a ...any) *apiError {
	return newError("ValidationException", "1 validation error detected: "+format, a...)
}

func checkKeyIDField(field, v string) *apiError {
	if v == "" {
		return validationf("Value null at '%s' failed to satisfy constraint: Member must not be null", field)
	}
	if len(v) > 2048 {
		return validationf("Value at '%s' failed to satisfy constraint: Member must have length less than or equal to 2048", field)
	}
	return nil
}

func checkBlobField(field string, b []byte, max int) *apiError {
	switch {
	case b == nil:
		return validationf("Value null at '%s' failed to satisfy constraint: Member must not be null", field)
	case len(b) == 0:
		return validationf("Value at '%s' failed to satisfy constraint: Member must have length greater than or equal to 1", field)
	case len(b) > max:
		return validationf("Value at '%s' failed to satisfy constraint: Member must have length less than or equal to %d", field, max)
	}
	return nil
}

// checkAlgorithm accepts the symmetric algorithm; the others exist in KMS
// but not for the keys this emulator makes.
func checkAlgorithm(field, v string) *apiError {
	switch v {
	case "", symmetricDefault:
		return nil
	case "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE":
		return newError("InvalidKeyUsageException", "The encryption algorithm %s is not valid for a symmetric KMS key.", v)
	}
	return validationf("Value '%s' at '%s' failed to satisfy constraint: Member must satisfy enum value set: [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]", v, field)
}

func isAliasForm(v string) bool {
	if strings.HasPrefix(v, "alias/") {
		return true
	}
	parts := strings.SplitN(v, ":", 6)
	return len(parts) == 6 && parts[0] == "arn" && strings.HasPrefix(parts[5], "alias/")
}

// resolveLocked finds the CMK that input names: key id, key ARN, alias
// name or alias ARN, in this emulator's region and account.
func (s *Server) resolveLocked(input string) (*cmk, *apiError) {
	if strings.HasPrefix(input, "arn:") {
		parts := strings.SplitN(input, ":", 6)
		if len(parts) != 6 || parts[1] != "aws" || parts[2] != "kms" {
			return nil, newError("NotFoundException", "Invalid arn %s", input)
		}
		here := parts[3] == s.region && parts[4] == s.account
		kind, rest, _ := strings.Cut(parts[5], "/")
		switch kind {
		case "key":
			if k := s.keys[rest]; here && k != nil {
				return k, nil
			}
			return nil, newError("NotFoundException", "Key '%s' does not exist", input)
		case "alias":
			if !here {
				return nil, newError("NotFoundException", "Alias %s is not found.", input)
			}
			return s.aliasTargetLocked(parts[5], input)
		}
		return nil, newError("NotFoundException", "Invalid arn %s", input)
	}
	if strings.HasPrefix(input, "alias/") {
		return s.aliasTargetLocked(input, s.aliasARNLocked(input))
	}
	if k := s.keys[input]; k != nil {
		return k, nil
	}
	return nil, newError("NotFoundException", "Key '%s' does not exist", s.keyARNLocked(input))
}

func (s *Server) aliasTargetLocked(name, shown string) (*cmk, *apiError) {
	a := s.aliases[name]
	if a == nil {
		return nil, newError("NotFoundException", "Alias %s is not found.", shown)
	}
	return s.keys[a.target], nil
}

func (s *Server) enabledLocked(k *cmk) bool {
	return k.enabled && !s.faults.Disabled[k.id]
}

// keyRef is what an operation needs of a CMK, copied out under the lock.
type keyRef struct {
	id, arn string
	aead    cipher.AEAD
	enabled bool
}

func (r keyRef) usable() *apiError {
	if !r.enabled {
		return newError("DisabledException", "%s is disabled.", r.arn)
	}
	return nil
}

func (s *Server) refLocked(k *cmk) keyRef {
	return keyRef{id: k.id, arn: s.keyARNLocked(k.id), aead: k.aead, enabled: s.enabledLocked(k)}
}

// lookup resolves input and notes the key for the log line.
func (s *Server) lookup(info *reqInfo, input string) (keyRef, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.resolveLocked(input)
	if err != nil {
		return keyRef{}, err
	}
	info.note(k.id)
	return s.refLocked(k), nil
}

func (info *reqInfo) note(id string) {
	switch {
	case info.keyID == "":
		info.keyID = id
	case info.keyID != id:
		info.keyID += "," + id
	}
}

type keyMetadata struct {
	AWSAccountId          string
	KeyId                 string
	Arn                   string
	CreationDate          float64
	Enabled               bool
	Description           string
	KeyUsage              string
	KeyState              string
	Origin                string
	KeyManager            string
	CustomerMasterKeySpec string
	KeySpec               string
	EncryptionAlgorithms  []string
	MultiRegion           bool
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func (s *Server) metadataLocked(k *cmk) keyMetadata {
	state := "Enabled"
	if !s.enabledLocked(k) {
		state = "Disabled"
	}
	return keyMetadata{
		AWSAccountId:          s.account,
		KeyId:                 k.id,
		Arn:                   s.keyARNLocked(k.id),
		CreationDate:          epoch(k.created),
		Enabled:               state == "Enabled",
		Description:           k.description,
		KeyUsage:              "ENCRYPT_DECRYPT",
		KeyState:              state,
		Origin:                "AWS_KMS",
		KeyManager:            "CUSTOMER",
		CustomerMasterKeySpec: symmetricDefault,
		KeySpec:               symmetricDefault,
		EncryptionAlgorithms:  []string{symmetricDefault},
	}
}

func unsupported(what string) *apiError {
	return newError("UnsupportedOperationException", "%s is not supported by this emulator: it makes only symmetric ENCRYPT_DECRYPT keys of origin AWS_KMS.", what)
}

func opCreateKey(s *Server, info *reqInfo, body []byte) (any, *apiError) {
	var in struct {
		Description           string
		KeyUsage              string
		KeySpec               string
		CustomerMasterKeySpec string
		Origin                string
		MultiRegion           bool
		CustomKeyStoreId      string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if len(in.Description) > 8192 {
		return nil, validationf("Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192")
	}
	switch in.KeyUsage {
	case "", "ENCRYPT_DECRYPT":
	case "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT":
		return nil, unsupported("KeyUsage " + in.KeyUsage)
	default:
		return nil, validationf("Value '%s' at 'keyUsage' failed to satisfy constraint: Member must satisfy enum value set: [ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC, KEY_AGREEMENT]", in.KeyUsage)
	}
	for _, spec := range []string{in.KeySpec, in.CustomerMasterKeySpec} {
		if spec != "" && spec != symmetricDefault {
			return nil, unsupported("KeySpec " + spec)
		}
	}
	if in.Origin != "" && in.Origin != "AWS_KMS" {
		return nil, unsupported("Origin " + in.Origin)
	}
	if in.MultiRegion || in.CustomKeyStoreId != "" {
		return nil, unsupported("A multi-Region or custom key store key")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.addKeyLocked(newUUID(), in.Description, s.now())
	info.note(k.id)
	return map[string]any{"KeyMetadata": s.metadataLocked(k)}, nil
}

type keyIDInput struct {
	KeyId string
}

func opDescribeKey(s *Server, info *reqInfo, body []byte) (any, *apiError) {
	var in keyIDInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkKeyIDField("keyId", in.KeyId); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.resolveLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	info.note(k.id)
	return map[string]any{"KeyMetadata": s.metadataLocked(k)}, nil
}

func setEnabled(s *Server, info *reqInfo, body []byte, on bool) (any, *apiError) {
	var in keyIDInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkKeyIDField("keyId", in.KeyId); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.resolveLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	info.note(k.id)
	k.enabled = on
	return nil, nil
}

func opEnableKey(s *Server, info *reqInfo, body []byte) (any, *apiError) {
	return setEnabled(s, info, body, true)
}

func opDisableKey(s *Server, info *reqInfo, body []byte) (any, *apiError) {
	return setEnabled(s, info, body, false)
}

func opCreateAlias(s *Server, info *reqInfo, body []byte) (any, *apiError) {
	var in struct {
		AliasName   string
		TargetKeyId string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.AliasName == "" {
		return nil, validationf("Value null at 'aliasName' failed to satisfy constraint: Member must not be null")
	}
	if !validAliasName(in.AliasName) {
		return nil, validationf("Value '%s' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$", in.AliasName)
	}
	if strings.HasPrefix(in.AliasName, "alias/aws/") {
		return nil, newError("NotAuthorizedException", "Alias names that begin with alias/aws/ are reserved for AWS managed keys.")
	}
	if err := checkKeyIDField("targetKeyId", in.TargetKeyId); err != nil {
		return nil, err
	}
	if isAliasForm(in.TargetKeyId) {
		return nil, newError("ValidationException", "Aliases must refer to keys. Not aliases")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.resolveLocked(in.TargetKeyId)
	if err != nil {
		return nil, err
	}
	info.note(k.id)
	if _, ok := s.aliases[in.AliasName]; ok {
		return nil, newError("AlreadyExistsException", "An alias with the name %s already exists", s.aliasARNLocked(in.AliasName))
	}
	now := s.now()
	s.aliases[in.AliasName] = &alias{name: in.AliasName, target: k.id, created: now, updated: now}
	s.aliasOrder = append(s.aliasOrder, in.AliasName)
	return nil, nil
}

// page checks Limit and Marker and returns the window [from, to) of n
// items and the next marker ("" at the end).
func page(limit *int, marker string, n int) (from, to int, next string, aerr *apiError) {
	lim := 100
	if limit != nil {
		if *limit < 1 || *limit > 1000 {
			return 0, 0, "", validationf("Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and 1000", *limit)
		}
		lim = *limit
	}
	if marker != "" {
		v, err := strconv.Atoi(marker)
		if err != nil || v < 0 || v > n {
			return 0, 0, "", newError("InvalidMarkerException", "Invalid marker")
		}
		from = v
	}
	to = min(from+lim, n)
	if to < n {
		next = strconv.Itoa(to)
	}
	return from, to, next, nil
}

func opListKeys(s *Server, info *reqInfo, body []byte) (any, *apiError) {
	var in struct {
		Limit  *int
		Marker string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	from, to, next, err := page(in.Limit, in.Marker, len(s.keyOrder))
	if err != nil {
		return nil, err
	}
	keys := make([]map[string]string, 0, to-from)
	for _, id := range s.keyOrder[from:to] {
		keys = append(keys, map[string]string{"KeyId": id, "KeyArn": s.keyARNLocked(id)})
	}
	return map[string]any{"Keys": keys, "NextMarker": next, "Truncated": next != ""}, nil
}

func opListAliases(s *Server, info *reqInfo, body []byte) (any, *apiError) {
	var in struct {
		KeyId  string
		Limit  *int
		Marker string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := s.aliasOrder
	if in.KeyId != "" {
		k, err := s.resolveLocked(in.KeyId)
		if err != nil {
			return nil, err
		}
		info.note(k.id)
		names = nil
		for _, n := range s.aliasOrder {
			if s.aliases[n].target == k.id {
				names = append(names, n)
			}
		}
	}
	from, to, next, err := page(in.Limit, in.Marker, len(names))
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, to-from)
	for _, n := range names[from:to] {
		a := s.aliases[n]
		out = append(out, map[string]any{
			"AliasName":       a.name,
			"AliasArn":        s.aliasARNLocked(a.name),
			"TargetKeyId":     a.target,
			"CreationDate":    epoch(a.created),
			"LastUpdatedDate": epoch(a.updated),
		})
	}
	return map[string]any{"Aliases": out, "NextMarker": next, "Truncated": next != ""}, nil
}

func dryRun() *apiError { return newError("DryRunOperationException", msgDryRun) }

func opEncrypt(s *Server, info *reqInfo, body []byte) (any, *apiError) {
	var in struct {
		KeyId               string
		Plaintext           []byte
		EncryptionContext   map[string]string
		EncryptionAlgorithm string
		DryRun              bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkKeyIDField("keyId", in.KeyId); err != nil {
		return nil, err
	}
	if err := checkBlobField("plaintext", in.Plaintext, 4096); err != nil {
		return nil, err
	}
	k, err := s.lookup(info, in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := k.usable(); err != nil {
		return nil, err
	}
	if err := checkAlgorithm("encryptionAlgorithm", in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, dryRun()
	}
	blob, serr := seal(k.aead, k.id, in.Plaintext, in.EncryptionContext)
	if serr != nil {
		return nil, newError("KMSInternalException", "%v", serr)
	}
	return map[string]any{"CiphertextBlob": blob, "KeyId": k.arn, "EncryptionAlgorithm": symmetricDefault}, nil
}

// openBlob checks and opens a ciphertext blob as Decrypt and ReEncrypt
// do: the optional key input must name the blob's CMK, which must be
// enabled, and the context must be the one it was sealed with.
func (s *Server) openBlob(info *reqInfo, blob []byte, ctx map[string]string, keyInput string) ([]byte, keyRef, *apiError) {
	var want keyRef
	if keyInput != "" {
		var err *apiError
		if want, err = s.lookup(info, keyInput); err != nil {
			return nil, keyRef{}, err
		}
	}
	id, ok := blobKeyID(blob)
	if !ok {
		return nil, keyRef{}, newError("InvalidCiphertextException", "")
	}
	s.mu.Lock()
	k := s.keys[id]
	var src keyRef
	if k != nil {
		src = s.refLocked(k)
		info.note(k.id)
	}
	s.mu.Unlock()
	if k == nil {
		return nil, keyRef{}, newError("InvalidCiphertextException", "")
	}
	if keyInput != "" && want.id != src.id {
		return nil, keyRef{}, newError("IncorrectKeyException", msgIncorrectKey)
	}
	if err := src.usable(); err != nil {
		return nil, keyRef{}, err
	}
	pt, ok := open(src.aead, blob, ctx)
	if !ok {
		return nil, keyRef{}, newError("InvalidCiphertextException", "")
	}
	return pt, src, nil
}

func opDecrypt(s *Server, info *reqInfo, body []byte) (any, *apiError) {
	var in struct {
		CiphertextBlob      []byte
		EncryptionContext   map[string]string
		KeyId               string
		EncryptionAlgorithm string
		DryRun              bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkBlobField("ciphertextBlob", in.CiphertextBlob, 6144); err != nil {
		return nil, err
	}
	if err := checkAlgorithm("encryptionAlgorithm", in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	pt, src, err := s.openBlob(info, in.CiphertextBlob, in.EncryptionContext, in.KeyId)
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, dryRun()
	}
	return map[string]any{"KeyId": src.arn, "Plaintext": pt, "EncryptionAlgorithm": symmetricDefault}, nil
}

func opReEncrypt(s *Server, info *reqInfo, body []byte) (any, *apiError) {
	var in struct {
		CiphertextBlob                 []byte
		SourceEncryptionContext        map[string]string
		SourceKeyId                    string
		DestinationKeyId               string
		DestinationEncryptionContext   map[string]string
		SourceEncryptionAlgorithm      string
		DestinationEncryptionAlgorithm string
		DryRun                         bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkBlobField("ciphertextBlob", in.CiphertextBlob, 6144); err != nil {
		return nil, err
	}
	if err := checkKeyIDField("destinationKeyId", in.DestinationKeyId); err != nil {
		return nil, err
	}
	if err := checkAlgorithm("sourceEncryptionAlgorithm", in.SourceEncryptionAlgorithm); err != nil {
		return nil, err
	}
	if err := checkAlgorithm("destinationEncryptionAlgorithm", in.DestinationEncryptionAlgorithm); err != nil {
		return nil, err
	}
	pt, src, err := s.openBlob(info, in.CiphertextBlob, in.SourceEncryptionContext, in.SourceKeyId)
	if err != nil {
		return nil, err
	}
	dst, err := s.lookup(info, in.DestinationKeyId)
	if err != nil {
		return nil, err
	}
	if err := dst.usable(); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, dryRun()
	}
	blob, serr := seal(dst.aead, dst.id, pt, in.DestinationEncryptionContext)
	if serr != nil {
		return nil, newError("KMSInternalException", "%v", serr)
	}
	return map[string]any{
		"CiphertextBlob":                 blob,
		"SourceKeyId":                    src.arn,
		"KeyId":                          dst.arn,
		"SourceEncryptionAlgorithm":      symmetricDefault,
		"DestinationEncryptionAlgorithm": symmetricDefault,
	}, nil
}

// generate is GenerateDataKey and GenerateDataKeyWithoutPlaintext.
func generate(s *Server, info *reqInfo, body []byte, withPlaintext bool) (any, *apiError) {
	var in struct {
		KeyId             string
		KeySpec           string
		NumberOfBytes     *int
		EncryptionContext map[string]string
		DryRun            bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkKeyIDField("keyId", in.KeyId); err != nil {
		return nil, err
	}
	n := 0
	switch in.KeySpec {
	case "":
	case "AES_128":
		n = 16
	case "AES_256":
		n = 32
	default:
		return nil, validationf("Value '%s' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]", in.KeySpec)
	}
	if in.NumberOfBytes != nil {
		switch v := *in.NumberOfBytes; {
		case v < 1:
			return nil, validationf("Value '%d' at 'numberOfBytes' failed to satisfy constraint: Member must have value greater than or equal to 1", v)
		case v > 1024:
			return nil, validationf("Value '%d' at 'numberOfBytes' failed to satisfy constraint: Member must have value less than or equal to 1024", v)
		}
	}
	if (in.KeySpec == "") == (in.NumberOfBytes == nil) {
		return nil, newError("ValidationException", "Please specify either number of bytes or key spec.")
	}
	if in.NumberOfBytes != nil {
		n = *in.NumberOfBytes
	}
	k, err := s.lookup(info, in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := k.usable(); err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, dryRun()
	}
	s.mu.Lock()
	fixed := append([]byte(nil), s.faults.DataKey...)
	s.mu.Unlock()
	key := make([]byte, n)
	if len(fixed) > 0 {
		copy(key, fixed) // the test's chosen plaintext, zero-padded or cut
	} else if _, rerr := rand.Read(key); rerr != nil {
		return nil, newError("KMSInternalException", "%v", rerr)
	}
	blob, serr := seal(k.aead, k.id, key, in.EncryptionContext)
	if serr != nil {
		return nil, newError("KMSInternalException", "%v", serr)
	}
	out := map[string]any{"CiphertextBlob": blob, "KeyId": k.arn}
	if withPlaintext {
		out["Plaintext"] = key
	}
	return out, nil
}

func opGenerateDataKey(s *Server, info *reqInfo, body []byte) (any, *apiError) {
	return generate(s, info, body, true)
}

func opGenerateDataKeyWithoutPlaintext(s *Server, info *reqInfo, body []byte) (any, *apiError) {
	return generate(s, info, body, false)
}
