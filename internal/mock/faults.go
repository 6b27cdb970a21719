package mock

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Faults is the injected misbehaviour of the fake KMS.
type Faults struct {
	// Disabled master key ids: generation under them and Decrypt of their
	// blobs fail with DisabledException.
	Disabled map[string]bool
	// Fail lists failures in the order they were given.
	Fail []Failure
	// Delay per operation ("*" for all).
	Delay map[string]time.Duration
	// DataKey, if set, is the plaintext of every new data key.
	DataKey []byte
}

// Failure makes an operation fail with a KMS exception.
type Failure struct {
	Op, Code string
	// Left is how many more calls fail; negative means for good.
	Left int
}

var knownOps = map[string]bool{OpGenerate: true, OpDecrypt: true, "*": true}

// ParseFaults reads the fault language: directives separated by ';',
//
//	disable=<master key id>          the key is disabled
//	fail=<Op>:<Exception>[:<count>]  Op fails count times (default: for good);
//	                                 the exception Panic makes it panic instead
//	delay=<Op>:<milliseconds>        Op takes that long (bounded by the call's timeout)
//	datakey=<hex>                    new data keys have this plaintext
//
// Op is GenerateDataKeyWithoutPlaintext, Decrypt or *. An empty string
// means no faults.
func ParseFaults(spec string) (*Faults, error) {
	f := &Faults{}
	for _, d := range strings.Split(spec, ";") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		name, arg, ok := strings.Cut(d, "=")
		if !ok {
			return nil, fmt.Errorf("fault %q: want name=value", d)
		}
		if err := f.add(strings.TrimSpace(name), strings.TrimSpace(arg)); err != nil {
			return nil, fmt.Errorf("fault %q: %w", d, err)
		}
	}
	return f, nil
}

func (f *Faults) add(name, arg string) error {
	switch name {
	case "disable":
		if arg == "" {
			return fmt.Errorf("disable needs a master key id")
		}
		if f.Disabled == nil {
			f.Disabled = make(map[string]bool)
		}
		f.Disabled[arg] = true
	case "fail":
		parts := strings.Split(arg, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[1] == "" {
			return fmt.Errorf("want fail=<Op>:<Exception>[:<count>]")
		}
		if !knownOps[parts[0]] {
			return fmt.Errorf("unknown operation %q (want %s, %s or *)", parts[0], OpGenerate, OpDecrypt)
		}
		left := -1
		if len(parts) == 3 {
			n, err := strconv.Atoi(parts[2])
			if err != nil || n < 1 {
				return fmt.Errorf("count %q is not a positive number", parts[2])
			}
			left = n
		}
		f.Fail = append(f.Fail, Failure{Op: parts[0], Code: parts[1], Left: left})
	case "delay":
		op, ms, ok := strings.Cut(arg, ":")
		if !ok || !knownOps[op] {
			return fmt.Errorf("want delay=<Op>:<milliseconds> with Op %s, %s or *", OpGenerate, OpDecrypt)
		}
		n, err := strconv.Atoi(ms)
		if err != nil || n < 0 || n > 600000 {
			return fmt.Errorf("milliseconds %q not in 0..600000", ms)
		}
		if f.Delay == nil {
			f.Delay = make(map[string]time.Duration)
		}
		f.Delay[op] = time.Duration(n) * time.Millisecond
	case "datakey":
		b, err := hex.DecodeString(arg)
		if err != nil || (len(b) != 16 && len(b) != 32) {
			return fmt.Errorf("datakey must be 32 or 64 hex digits")
		}
		f.DataKey = b
	default:
		return fmt.Errorf("unknown fault %q (want disable, fail, delay or datakey)", name)
	}
	return nil
}

func (f *Faults) clone() *Faults {
	c := &Faults{Disabled: make(map[string]bool), Delay: make(map[string]time.Duration)}
	for k, v := range f.Disabled {
		c.Disabled[k] = v
	}
	for k, v := range f.Delay {
		c.Delay[k] = v
	}
	c.Fail = append(c.Fail, f.Fail...)
	c.DataKey = append([]byte(nil), f.DataKey...)
	return c
}

func (f *Faults) delayFor(op string) time.Duration {
	if d, ok := f.Delay[op]; ok {
		return d
	}
	return f.Delay["*"]
}

// take returns the error of the first failure that applies to op and
// counts it down.
func (f *Faults) take(op string) error {
	for i := range f.Fail {
		fl := &f.Fail[i]
		if (fl.Op != op && fl.Op != "*") || fl.Left == 0 {
			continue
		}
		if fl.Left > 0 {
			fl.Left--
		}
		return &Error{Code: fl.Code, Message: fmt.Sprintf("injected by aws_key_management_mock_faults (%s)", op)}
	}
	return nil
}

// Take is take for users outside this package (the KMS emulator in
// internal/kmstest): the error of the first failure that applies to op,
// counted down, or nil. Not safe for concurrent use: callers lock.
func (f *Faults) Take(op string) error { return f.take(op) }

// DelayFor is delayFor for users outside this package: the latency
// injected into op ("*" applies to every operation).
func (f *Faults) DelayFor(op string) time.Duration { return f.delayFor(op) }
