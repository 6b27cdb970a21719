package kmstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// control answers the loopback-only control endpoints and returns the
// HTTP status it sent. They take no signature: the emulator is for tests
// on 127.0.0.1 and guards nothing.
//
//	GET  /_emulator/health        "ok"
//	POST /_emulator/faults        body: fault spec (400 with the parse error)
//	GET  /_emulator/faults        the spec in force
//	GET  /_emulator/calls         JSON {"Op": count, ...}
//	POST /_emulator/calls/reset   counts back to zero
//	POST /_emulator/credentials   JSON {"AccessKeyId","SecretAccessKey","SessionToken"}
//	POST /_emulator/region        body: region
//	POST /_emulator/keys          JSON {"KeyId":"...","Aliases":["alias/x"]}; answers the key ARN
//	POST /_emulator/mfa-devices   JSON {"SerialNumber":"arn:...:mfa/x","Code":"123456"}
//	POST /_emulator/require-mfa   body: "on" or "off" (the key policy's MFA condition)
//	POST /_emulator/sessions/expire  every session so far expires now; answers how many
//	POST /_emulator/limits        JSON {"Quota":200,"LatencyMillis":20}: shared quota (requests/s, 0 none) and per-call latency
//	GET  /_emulator/limits        JSON {"Quota","LatencyMillis","Requests","Throttled"} (counts since calls/reset)
func (s *Server) control(w http.ResponseWriter, r *http.Request) int {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return text(w, http.StatusRequestEntityTooLarge, "body too large\n")
	}
	route := r.Method + " " + strings.TrimPrefix(r.URL.Path, "/_emulator")
	switch route {
	case "GET /health":
		return text(w, http.StatusOK, "ok\n")
	case "POST /faults":
		if err := s.SetFaults(string(body)); err != nil {
			return text(w, http.StatusBadRequest, err.Error()+"\n")
		}
		return noContent(w)
	case "GET /faults":
		s.mu.Lock()
		spec := s.faultSpec
		s.mu.Unlock()
		return text(w, http.StatusOK, spec+"\n")
	case "GET /calls":
		b, _ := json.Marshal(s.Calls())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(append(b, '\n'))
		return http.StatusOK
	case "POST /calls/reset":
		s.ResetCalls()
		return noContent(w)
	case "POST /credentials":
		var in struct{ AccessKeyId, SecretAccessKey, SessionToken string }
		if err := json.Unmarshal(body, &in); err != nil {
			return text(w, http.StatusBadRequest, "credentials: "+err.Error()+"\n")
		}
		if in.AccessKeyId == "" || in.SecretAccessKey == "" {
			return text(w, http.StatusBadRequest, "credentials: AccessKeyId and SecretAccessKey are required\n")
		}
		s.SetCredentials(in.AccessKeyId, in.SecretAccessKey, in.SessionToken)
		return noContent(w)
	case "POST /region":
		region := strings.TrimSpace(string(body))
		if !validRegion(region) {
			return text(w, http.StatusBadRequest, "region: want a name like us-east-1\n")
		}
		s.SetRegion(region)
		return noContent(w)
	case "POST /keys":
		var in struct {
			KeyId   string
			Aliases []string
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return text(w, http.StatusBadRequest, "keys: "+err.Error()+"\n")
		}
		arn, err := s.createKey(in.KeyId, in.Aliases)
		if err != nil {
			return text(w, http.StatusBadRequest, "keys: "+err.Error()+"\n")
		}
		return text(w, http.StatusOK, arn+"\n")
	case "POST /limits":
		var in struct{ Quota, LatencyMillis float64 }
		if err := json.Unmarshal(body, &in); err != nil {
			return text(w, http.StatusBadRequest, "limits: "+err.Error()+"\n")
		}
		if err := s.SetLimits(Limits{Quota: in.Quota, Latency: time.Duration(in.LatencyMillis * float64(time.Millisecond))}); err != nil {
			return text(w, http.StatusBadRequest, err.Error()+"\n")
		}
		return noContent(w)
	case "GET /limits":
		st := s.LimitStats()
		b, _ := json.Marshal(map[string]any{"Quota": st.Quota, "LatencyMillis": float64(st.Latency) / float64(time.Millisecond),
			"Requests": st.Requests, "Throttled": st.Throttled})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(append(b, '\n'))
		return http.StatusOK
	case "POST /mfa-devices":
		var in struct{ SerialNumber, Code string }
		if err := json.Unmarshal(body, &in); err != nil {
			return text(w, http.StatusBadRequest, "mfa-devices: "+err.Error()+"\n")
		}
		if err := s.SetMFADevice(in.SerialNumber, in.Code); err != nil {
			return text(w, http.StatusBadRequest, "mfa-devices: "+err.Error()+"\n")
		}
		return noContent(w)
	case "POST /require-mfa":
		switch strings.TrimSpace(string(body)) {
		case "on":
			s.SetRequireMFA(true)
		case "off":
			s.SetRequireMFA(false)
		default:
			return text(w, http.StatusBadRequest, "require-mfa: want on or off\n")
		}
		return noContent(w)
	case "POST /sessions/expire":
		return text(w, http.StatusOK, fmt.Sprintf("%d\n", s.ExpireSessions()))
	}
	for _, known := range []string{"/health", "/faults", "/calls", "/calls/reset", "/credentials", "/region", "/keys", "/mfa-devices", "/require-mfa", "/sessions/expire", "/limits"} {
		if "/_emulator"+known == r.URL.Path {
			return text(w, http.StatusMethodNotAllowed, "method not allowed\n")
		}
	}
	return text(w, http.StatusNotFound, "no such control endpoint\n")
}

func validRegion(r string) bool {
	if r == "" || len(r) > 64 {
		return false
	}
	for _, c := range []byte(r) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func text(w http.ResponseWriter, status int, msg string) int {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, msg)
	return status
}

func noContent(w http.ResponseWriter) int {
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}
