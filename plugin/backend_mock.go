//go:build mock

package main

import (
	"github.com/mariadb-go/aws_key_management/cabi"
	"github.com/mariadb-go/aws_key_management/internal/keys"
	"github.com/mariadb-go/aws_key_management/internal/mock"
)

// newBackend returns the in-process mock when aws_key_management_mock is
// ON, the AWS client otherwise.
func newBackend(s cabi.Settings, log cabi.Log) (keys.KMS, error) {
	if !s.Mock {
		return newAWS(s, log)
	}
	m := &mockBackend{KMS: mock.New()}
	if err := m.SetFaultSpec(s.MockFaults, true); err != nil {
		return nil, err
	}
	log.Note("using the mock KMS (aws_key_management_mock=ON); keys are not protected by AWS")
	return m, nil
}

type mockBackend struct{ *mock.KMS }

func (m *mockBackend) SetFaultSpec(spec string, apply bool) error {
	f, err := mock.ParseFaults(spec)
	if err != nil {
		return err
	}
	if apply {
		m.SetFaults(f)
	}
	return nil
}
