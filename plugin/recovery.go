package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/mariadb-go/aws_key_management/cabi"
	"github.com/mariadb-go/aws_key_management/internal/recovery"
)

// openRecovery opens the recovery bundle named by
// aws_key_management_recovery_bundle: the keys then come from it, with no
// KMS call (a host with no route to KMS).
func openRecovery(s cabi.Settings, log cabi.Log) (*recovery.Bundle, error) {
	if s.RecoveryIdentity == "" {
		return nil, errors.New("aws_key_management_recovery_bundle is set but aws_key_management_recovery_identity is not: name the age identity file (the recovery key) that opens the bundle")
	}
	b, err := recovery.OpenFiles(s.RecoveryBundle, s.RecoveryIdentity)
	if err != nil {
		return nil, fmt.Errorf("recovery mode (aws_key_management_recovery_bundle): %w", err)
	}
	log.Warning(fmt.Sprintf("recovery mode: keys come from the recovery bundle %s (made %s on %s from %s, %d key versions), not from KMS; new keys and rotation are refused",
		s.RecoveryBundle, b.Created.Format(time.RFC3339), b.Host, b.Source, len(b.Entries)))
	return b, nil
}
