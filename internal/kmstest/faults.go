package kmstest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mariadb-go/aws_key_management/internal/mock"
)

// parseFaults reads internal/mock's fault language with the emulator's
// wider set of operations. mock.ParseFaults knows only the plugin's two
// calls, so a directive naming another operation is parsed as if it named
// "*" and then given its operation back: the grammar, checks and messages
// stay mock's own.
func parseFaults(spec string) (*mock.Faults, error) {
	all := &mock.Faults{}
	for _, d := range strings.Split(spec, ";") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		one := d
		op := ""
		name, arg, _ := strings.Cut(d, "=")
		name = strings.TrimSpace(name)
		if name == "fail" || name == "delay" {
			o, rest, ok := strings.Cut(strings.TrimSpace(arg), ":")
			if ok {
				if o != "*" && operations[o] == nil {
					return nil, fmt.Errorf("fault %q: unknown operation %q (want a KMS operation name or *)", d, o)
				}
				if o != mock.OpGenerate && o != mock.OpDecrypt && o != "*" {
					op, one = o, name+"=*:"+rest
				}
			}
		}
		f, err := mock.ParseFaults(one)
		if err != nil {
			if inner := errors.Unwrap(err); inner != nil && one != d {
				return nil, fmt.Errorf("fault %q: %w", d, inner)
			}
			return nil, err
		}
		if op != "" {
			for i := range f.Fail {
				f.Fail[i].Op = op
			}
			if v, ok := f.Delay["*"]; ok {
				delete(f.Delay, "*")
				f.Delay[op] = v
			}
		}
		all.Fail = append(all.Fail, f.Fail...)
		for k, v := range f.Delay {
			if all.Delay == nil {
				all.Delay = make(map[string]time.Duration)
			}
			all.Delay[k] = v
		}
		for k, v := range f.Disabled {
			if all.Disabled == nil {
				all.Disabled = make(map[string]bool)
			}
			all.Disabled[k] = v
		}
		if f.DataKey != nil {
			all.DataKey = f.DataKey
		}
	}
	return all, nil
}
