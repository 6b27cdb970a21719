package main

import (
	"context"
	"os"

	"github.com/mariadb-go/aws_key_management/cabi"
	"github.com/mariadb-go/aws_key_management/internal/keys"
	"github.com/mariadb-go/aws_key_management/internal/kmsbackend"
)

// newAWS builds the AWS KMS client from the plugin's variables. Request
// logging follows aws_key_management_log_level, read at each request.
func newAWS(s cabi.Settings, log cabi.Log) (keys.KMS, error) {
	dataDir, err := os.Getwd() // the server runs the plugin in its datadir
	if err != nil {
		dataDir = ""
	}
	c, err := kmsbackend.New(context.Background(), kmsbackend.Config{
		Region:         s.Region,
		EndpointURL:    s.EndpointURL,
		RequestTimeout: s.RequestTimeout,
		DataDir:        dataDir,
		Log: &kmsbackend.Logger{
			Level: func() kmsbackend.LogLevel { return kmsbackend.LogLevel(cabi.CurrentLogLevel()) },
			Print: func(level kmsbackend.LogLevel, msg string) {
				switch level {
				case kmsbackend.LogFatal, kmsbackend.LogError:
					log.Error(msg)
				case kmsbackend.LogWarn:
					log.Warning(msg)
				default:
					log.Note(msg)
				}
			},
		},
	})
	if err != nil {
		return nil, err
	}
	log.Note(c.Description)
	for _, n := range c.Notes {
		log.Note(n)
	}
	for _, w := range c.Warnings {
		log.Warning(w)
	}
	return c, nil
}
