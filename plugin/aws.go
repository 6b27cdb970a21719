package main

import (
	"context"

	"github.com/mariadb-go/aws_key_management/cabi"
	"github.com/mariadb-go/aws_key_management/internal/keys"
	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
)

// newAWS builds the AWS KMS client from the plugin's variables.
func newAWS(s cabi.Settings, _ cabi.Log) (keys.KMS, error) {
	return kmsbackend.New(context.Background(), kmsbackend.Config{
		Region:         s.Region,
		EndpointURL:    s.EndpointURL,
		RequestTimeout: s.RequestTimeout,
	})
}
