//go:build mock

package cabi

// In mock builds plugin.c also declares aws_key_management_mock and
// aws_key_management_mock_faults.

// #cgo CFLAGS: -DAKM_MOCK=1
import "C"
