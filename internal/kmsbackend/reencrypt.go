package kmsbackend

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/mariadb-go/aws_key_management/internal/kmserr"
)

// The operator tool (cmd/mariadb-aws-keys) also re-wraps key files under
// another KMS key and resolves key names; the plugin never does. Those two
// calls are an interface of their own, so that the plugin's API (and its
// test doubles) stay as they are: a client whose API lacks them says so.

// RewrapAPI is the part of *kms.Client that ReEncrypt and DescribeKey use.
type RewrapAPI interface {
	ReEncrypt(ctx context.Context, in *kms.ReEncryptInput, opts ...func(*kms.Options)) (*kms.ReEncryptOutput, error)
	DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, opts ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
}

var _ RewrapAPI = (*kms.Client)(nil)

const (
	opReEncrypt   = "ReEncrypt"
	opDescribeKey = "DescribeKey"
)

// ReEncrypted is what ReEncrypt returns.
type ReEncrypted struct {
	// Blob is the data key wrapped under the destination KMS key.
	Blob []byte
	// SourceKeyARN is the KMS key that wrapped the blob given; KeyARN
	// the one that wraps Blob.
	SourceKeyARN, KeyARN string
}

// ReEncrypt wraps the data key in blob under destKeyID (key id, key ARN,
// alias name or alias ARN) inside KMS: the plaintext key never leaves
// KMS. It needs kms:ReEncryptFrom on the blob's KMS key and
// kms:ReEncryptTo on the destination. Errors are *kmserr.Error; the call
// is bounded like every call of this client.
func (c *Client) ReEncrypt(ctx context.Context, blob []byte, destKeyID string) (ReEncrypted, error) {
	api, err := c.rewrapAPI(opReEncrypt)
	if err != nil {
		return ReEncrypted{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	out, err := api.ReEncrypt(ctx, &kms.ReEncryptInput{
		CiphertextBlob:   blob,
		DestinationKeyId: aws.String(destKeyID),
	})
	if err != nil {
		return ReEncrypted{}, kmserr.New(opReEncrypt, err)
	}
	if len(out.CiphertextBlob) == 0 {
		return ReEncrypted{}, kmserr.New(opReEncrypt, errors.New("KMS returned an empty CiphertextBlob"))
	}
	return ReEncrypted{Blob: out.CiphertextBlob, SourceKeyARN: aws.ToString(out.SourceKeyId), KeyARN: aws.ToString(out.KeyId)}, nil
}

// KeyInfo is what DescribeKey tells about a KMS key.
type KeyInfo struct {
	ARN   string // the key's ARN, whatever name it was asked by
	KeyID string
	// State is the KMS key state: Enabled, Disabled, PendingDeletion, ...
	State string
	// Usage is ENCRYPT_DECRYPT for a key that can wrap data keys; Spec
	// SYMMETRIC_DEFAULT for the keys GenerateDataKey takes.
	Usage, Spec string
}

// DescribeKey resolves keyID (key id, key ARN, alias name or alias ARN) to
// the key's ARN and state. It needs kms:DescribeKey on the key.
func (c *Client) DescribeKey(ctx context.Context, keyID string) (KeyInfo, error) {
	api, err := c.rewrapAPI(opDescribeKey)
	if err != nil {
		return KeyInfo{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	out, err := api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return KeyInfo{}, kmserr.New(opDescribeKey, err)
	}
	m := out.KeyMetadata
	if m == nil || aws.ToString(m.Arn) == "" {
		return KeyInfo{}, kmserr.New(opDescribeKey, errors.New("KMS returned no key ARN"))
	}
	return KeyInfo{
		ARN:   aws.ToString(m.Arn),
		KeyID: aws.ToString(m.KeyId),
		State: string(m.KeyState),
		Usage: string(m.KeyUsage),
		Spec:  string(m.KeySpec),
	}, nil
}

func (c *Client) rewrapAPI(op string) (RewrapAPI, error) {
	api, ok := c.api.(RewrapAPI)
	if !ok {
		return nil, kmserr.New(op, fmt.Errorf("this KMS client (%T) does not offer %s", c.api, op))
	}
	return api, nil
}
