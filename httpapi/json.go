package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
)

// MaxBodyBytes is the largest request body read; a larger one gets 413.
const MaxBodyBytes = 1 << 20

// Error codes of this package, beside store's.
const (
	eTooLarge   = "too_large"          // 413
	eMethod     = "method_not_allowed" // 405
	eURITooLong = "uri_too_long"       // 414
	eTooMany    = "too_many_requests"  // 429
)

// statusOf maps every error code to its HTTP status: the one table.
var statusOf = map[string]int{
	errs.EINVALID:      http.StatusBadRequest,
	errs.EUNAUTHORIZED: http.StatusUnauthorized,
	errs.EFORBIDDEN:    http.StatusForbidden,
	errs.ENOTFOUND:     http.StatusNotFound,
	eMethod:            http.StatusMethodNotAllowed,
	errs.ECONFLICT:     http.StatusConflict,
	eTooLarge:          http.StatusRequestEntityTooLarge,
	eURITooLong:        http.StatusRequestURITooLong,
	errs.EINTERNAL:     http.StatusInternalServerError,
	errs.EEMPTY:        http.StatusServiceUnavailable,
	errs.EUNAVAILABLE:  http.StatusServiceUnavailable,
	eTooMany:           http.StatusTooManyRequests,
}

// writeError writes err as {"ok":false,"error":...} with its code's status
// and its details (errs.ErrorDetails) after; it is the only mapper.
// Internal errors are logged and shown only as "internal error"; a 401
// carries the Basic challenge.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := errs.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusInternalServerError {
		s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else if code == errs.EUNAVAILABLE {
		s.down.log(s.logger, r, err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="Authentication required"`)
	}
	body := obj{{"ok", false}, {"error", errs.ErrorMessage(err)}}
	for _, d := range errs.ErrorDetails(err) {
		body = append(body, kv{d.Key, d.Value})
	}
	writeJSON(w, status, body)
}

// downLogEvery is how often at most the cause of an EUNAVAILABLE answer is
// logged: while a service is down every request fails the same way.
const downLogEvery = 10 * time.Second

// downLog logs why requests are answered 503 because a service the answer
// needs is down (the store's etcd): the answer keeps the cause (where the
// service is, what its client said) from clients, the log has it.
type downLog struct {
	mu      sync.Mutex
	last    time.Time
	skipped int // answers since the last line that were not logged
}

func (d *downLog) log(logger *slog.Logger, r *http.Request, err error) {
	d.mu.Lock()
	now := time.Now()
	if !d.last.IsZero() && now.Sub(d.last) < downLogEvery {
		d.skipped++
		d.mu.Unlock()
		return
	}
	skipped := d.skipped
	d.last, d.skipped = now, 0
	d.mu.Unlock()
	logger.Warn("request failed: a service it needs is unavailable", "method", r.Method, "path", r.URL.Path,
		"err", err, "not_logged_since_last", skipped)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// writeJSON writes v as pretty-printed JSON (2-space indent, as upstream).
// It is the only place that sets Content-Type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	bp := bufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 { // keep no megabyte /summary buffers around
			bufPool.Put(bp)
		}
	}()
	b, err := appendJSON((*bp)[:0], v, 0)
	if err != nil {
		status = http.StatusInternalServerError
		b = append(b[:0], "{\n  \"ok\": false,\n  \"error\": \"internal error\"\n}"...)
	}
	b = append(b, '\n')
	*bp = b
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	w.WriteHeader(status)
	w.Write(b)
}

const indent = "                                                                "

// newline starts a line indented for depth (2 spaces a level).
func newline(b []byte, depth int) []byte {
	b = append(b, '\n')
	for n := 2 * depth; n > 0; n -= min(n, len(indent)) {
		b = append(b, indent[:min(n, len(indent))]...)
	}
	return b
}

// appendJSON appends v pretty-printed at depth. obj, arrays, strings,
// numbers and booleans are written directly (the hot paths: /status,
// checkout); anything else goes through encoding/json and json.Indent.
func appendJSON(b []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case obj:
		return appendObj(b, v, depth)
	case []string:
		return appendArray(b, v, depth, func(b []byte, s string) ([]byte, error) { return appendString(b, s), nil })
	case []obj:
		return appendArray(b, v, depth, func(b []byte, o obj) ([]byte, error) { return appendObj(b, o, depth+1) })
	case string:
		return appendString(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case float64:
		if a := math.Abs(v); a == 0 || (a >= 1e-6 && a < 1e21) {
			return strconv.AppendFloat(b, v, 'f', -1, 64), nil
		}
	case nil:
		return append(b, "null"...), nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, data, indent[:min(2*depth, len(indent))], "  "); err != nil {
		return b, err
	}
	return append(b, out.Bytes()...), nil
}

// appendObj appends o pretty-printed at depth.
func appendObj(b []byte, o obj, depth int) ([]byte, error) {
	return appendSeq(b, "{}", o, depth, func(b []byte, m kv) ([]byte, error) {
		b = append(appendString(b, m.k), ": "...)
		return appendJSON(b, m.v, depth+1)
	})
}

// appendArray appends the elements of v, one a line, at depth+1.
func appendArray[T any](b []byte, v []T, depth int, elem func([]byte, T) ([]byte, error)) ([]byte, error) {
	return appendSeq(b, "[]", v, depth, elem)
}

// appendSeq appends the elements of v between the brackets delims, one a
// line, at depth+1.
func appendSeq[T any](b []byte, delims string, v []T, depth int, elem func([]byte, T) ([]byte, error)) ([]byte, error) {
	if len(v) == 0 {
		return append(b, delims...), nil
	}
	b = append(b, delims[0])
	var err error
	for i, e := range v {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = elem(newline(b, depth+1), e); err != nil {
			return b, err
		}
	}
	return append(newline(b, depth), delims[1]), nil
}

// appendString appends s as a JSON string; plain ASCII is copied as it is.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// readJSON decodes the body into v whatever the Content-Type. An empty body
// leaves v as it is. Invalid JSON or trailing data is EINVALID; a body over
// MaxBodyBytes is eTooLarge. Numbers decode as json.Number.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errs.Errorf(eTooLarge, "Request body too large (at most %d bytes)", MaxBodyBytes)
	} else if err != nil {
		return errs.Errorf(errs.EINVALID, "cannot read request body")
	}
	return decodeJSON(data, v)
}

// decodeJSON is readJSON's decoding half, separate for fuzzing.
func decodeJSON(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return errs.Errorf(errs.EINVALID, "Request body must be a JSON object")
		}
		return errs.Errorf(errs.EINVALID, "Invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errs.Errorf(errs.EINVALID, "Invalid JSON: data after the JSON value")
	}
	return nil
}

// scalar is a decoded JSON string or number (readJSON decodes numbers as
// json.Number) as text; ok is false for anything else.
func scalar(v any) (s string, ok bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	}
	return "", false
}

// wholeNumber reads a decoded JSON string or number as a whole number; a
// string may have spaces around it.
func wholeNumber(v any) (int, bool) {
	s, ok := scalar(v)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	return n, err == nil
}

// parseCount reads a VM count given as a JSON string or number: a whole
// number from 1 to pool.MaxCheckoutCount, else EINVALID.
func parseCount(v any) (int, error) {
	n, ok := wholeNumber(v)
	if !ok {
		return 0, errs.Errorf(errs.EINVALID, "VM count must be a valid integer")
	} else if n < 1 {
		return 0, errs.Errorf(errs.EINVALID, "VM count must be at least 1")
	} else if n > pool.MaxCheckoutCount {
		return 0, errs.Errorf(errs.EINVALID, "VM count must be at most %d", pool.MaxCheckoutCount)
	}
	return n, nil
}

// kv is one member of an obj.
type kv struct {
	k string
	v any
}

// obj is a JSON object that keeps its keys in order (ok first, names as
// requested), where a map would sort them.
type obj []kv

// MarshalJSON writes the members in order.
func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.k)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(m.v)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
