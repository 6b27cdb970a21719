package kmsbackend

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/mariadb-go/aws_key_management/internal/kmserr"
)

// EncryptAPI is the part of *kms.Client that Encrypt uses: the operator
// tool's import wraps keys from a recovery bundle under a KMS key; the
// plugin never sends a plaintext key to KMS.
type EncryptAPI interface {
	Encrypt(ctx context.Context, in *kms.EncryptInput, opts ...func(*kms.Options)) (*kms.EncryptOutput, error)
}

var _ EncryptAPI = (*kms.Client)(nil)

const opEncrypt = "Encrypt"

// Encrypt wraps a plaintext data key under keyID (key id, key ARN, alias
// name or alias ARN); KMS Decrypt of the blob gives the key back, so the
// blob is a key file. It needs kms:Encrypt on the key. The key passes
// through the SDK's request buffers (base64 in JSON), which are not
// wiped: use it on a host and at a time you trust, as for the bundle.
func (c *Client) Encrypt(ctx context.Context, keyID string, plaintext []byte) (blob []byte, keyARN string, err error) {
	api, ok := c.api.(EncryptAPI)
	if !ok {
		return nil, "", kmserr.New(opEncrypt, fmt.Errorf("this KMS client (%T) does not offer %s", c.api, opEncrypt))
	}
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	out, err := api.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: plaintext})
	if err != nil {
		return nil, "", kmserr.New(opEncrypt, err)
	}
	if len(out.CiphertextBlob) == 0 {
		return nil, "", kmserr.New(opEncrypt, errors.New("KMS returned an empty CiphertextBlob"))
	}
	return out.CiphertextBlob, aws.ToString(out.KeyId), nil
}
