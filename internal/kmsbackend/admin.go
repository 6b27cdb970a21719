package kmsbackend

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/mariadb-go/aws_key_management/internal/kmserr"
)

// AdminAPI is the part of *kms.Client that enables and disables a KMS
// key (mariadb-aws-keys enable-key / disable-key); like RewrapAPI, the
// plugin never uses it.
type AdminAPI interface {
	EnableKey(ctx context.Context, in *kms.EnableKeyInput, opts ...func(*kms.Options)) (*kms.EnableKeyOutput, error)
	DisableKey(ctx context.Context, in *kms.DisableKeyInput, opts ...func(*kms.Options)) (*kms.DisableKeyOutput, error)
}

var _ AdminAPI = (*kms.Client)(nil)

// SetKeyEnabled enables or disables a KMS key (key id or key ARN: KMS
// takes no alias for these calls). It needs kms:EnableKey or
// kms:DisableKey on the key.
func (c *Client) SetKeyEnabled(ctx context.Context, keyID string, enable bool) error {
	op := "DisableKey"
	if enable {
		op = "EnableKey"
	}
	api, ok := c.api.(AdminAPI)
	if !ok {
		return kmserr.New(op, fmt.Errorf("this KMS client (%T) does not offer %s", c.api, op))
	}
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	var err error
	if enable {
		_, err = api.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(keyID)})
	} else {
		_, err = api.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyID)})
	}
	if err != nil {
		return kmserr.New(op, err)
	}
	return nil
}
