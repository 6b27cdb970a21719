// Package kmsbackend is the AWS KMS client of the plugin: the two calls it
// makes (GenerateDataKeyWithoutPlaintext and Decrypt) over aws-sdk-go-v2,
// with region, endpoint, timeout and retry settings mapped from the
// plugin's system variables. One Client serves one plugin lifetime.
package kmsbackend
