//go:build !mock

package main

import (
	"github.com/mariadb-go/aws_key_management/cabi"
	"github.com/mariadb-go/aws_key_management/internal/keys"
)

// newBackend returns the AWS client: release builds contain no mock.
func newBackend(s cabi.Settings, log cabi.Log) (keys.KMS, error) {
	return newAWS(s, log)
}
