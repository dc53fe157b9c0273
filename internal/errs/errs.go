// Package errs holds the application error type and its codes: what every
// layer returns and httpapi maps to an HTTP status in one table. It imports
// nothing of this project, so every layer (store and its engines, auth,
// pool, httpapi) may use it.
package errs

import (
	"errors"
	"fmt"
	"slices"
)

// Error codes. httpapi maps each to one HTTP status in one table.
const (
	ECONFLICT     = "conflict"     // 409
	EINTERNAL     = "internal"     // 500
	EINVALID      = "invalid"      // 400
	ENOTFOUND     = "not_found"    // 404
	EUNAUTHORIZED = "unauthorized" // 401
	EFORBIDDEN    = "forbidden"    // 403
	EEMPTY        = "empty"        // 503: a pool has too few ready VMs
	EUNAVAILABLE  = "unavailable"  // 503: a service the answer needs (the store's etcd, the user directory) cannot be reached
)

// Error is an application error with a code and a message safe to show a
// client, and optional details: more members of the answer, in order
// (upstream's "failure" list, bad names, a quota's figures).
type Error struct {
	Code    string
	Message string
	Details []Detail
	err     error // what WithDetails added details to, or WithCause's message and cause
}

// Detail is one member of an error's answer beside its message.
type Detail struct {
	Key   string
	Value any
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the error WithDetails added details to, or the cause of
// WithCause (wrapped with the message), if any.
func (e *Error) Unwrap() error { return e.err }

// WithDetails returns err, with its code and message, and details added
// after those it has.
func WithDetails(err error, details ...Detail) error {
	code, msg := codeAndMessage(err)
	return &Error{Code: code, Message: msg, Details: append(ErrorDetails(err), details...), err: err}
}

// ErrorDetails returns the details of the first *Error in err's chain.
func ErrorDetails(err error) []Detail {
	var e *Error
	if errors.As(err, &e) {
		return slices.Clip(e.Details)
	}
	return nil
}

// WithCause returns an *Error with the code and a formatted message for
// the client, caused by cause, which it hides from clients: its Error(),
// for logs and the command line, is the message and the cause, and
// errors.Is and As see the cause.
func WithCause(cause error, code, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Code: code, Message: msg, err: fmt.Errorf("%s: %w", msg, cause)}
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	code, _ := codeAndMessage(err)
	return code
}

// ErrorMessage returns the message of the first *Error in err's chain, or
// "internal error" for any other error (never leaking internals to clients).
func ErrorMessage(err error) string {
	_, msg := codeAndMessage(err)
	return msg
}

// codeAndMessage returns what a client is told of err: the code and
// message of the first *Error in its chain, EINTERNAL and "internal error"
// for any other non-nil error, and nothing for nil.
func codeAndMessage(err error) (code, msg string) {
	var e *Error
	if err == nil {
		return "", ""
	} else if errors.As(err, &e) {
		return e.Code, e.Message
	}
	return EINTERNAL, "internal error"
}
