package domain

import (
	"errors"
	"fmt"
)

// ErrorCode classifies an error by what the caller can do about it. The api
// package turns codes into HTTP statuses in exactly one place.
type ErrorCode string

const (
	EINVALID     ErrorCode = "invalid"     // the request is malformed or breaks a rule; fix the input
	ENOTFOUND    ErrorCode = "not_found"   // the thing asked for does not exist
	ECONFLICT    ErrorCode = "conflict"    // the state moved on; reload and retry
	ETOOLARGE    ErrorCode = "too_large"   // an input is over its size limit
	EUNAVAILABLE ErrorCode = "unavailable" // a dependency (the database) is down; retry later
	EINTERNAL    ErrorCode = "internal"    // a bug or an unexpected failure
)

// Error is the one error type of the application. Message is safe to show to
// a client; Field names the input field at fault, when there is one.
type Error struct {
	Code    ErrorCode
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Errorf returns an *Error with a formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports that one input field breaks a rule.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound reports a missing entity, e.g. NotFound("project", id).
func NotFound(kind, id string) *Error {
	return &Error{Code: ENOTFOUND, Message: fmt.Sprintf("%s %s not found", kind, id)}
}

// ErrorCodeOf returns the code of err, EINTERNAL when it is not an *Error.
func ErrorCodeOf(err error) ErrorCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}
