package store

import (
	"errors"
	"fmt"
)

// ErrInUse is returned (wrapped) by Open when another process holds the file.
var ErrInUse = errors.New("database is in use by another vmpooler")

// ErrCorrupt is returned (wrapped, naming the file and what to do) when the
// file is damaged: bbolt panics on some damage, and Open, Check and every
// read recover that into this error instead of crashing.
var ErrCorrupt = errors.New("database corrupt")

// corruptError names the damaged file and what to do about it.
type corruptError struct {
	path  string
	cause any
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("database corrupt: %s (%v); stop vmpooler and restore the latest backup of this file, "+
		"or move it aside to start with an empty database (the VMs it knew are then foreign to the new one: "+
		"left alone, until taken over with vmpooler adopt)", e.path, e.cause)
}

func (e *corruptError) Unwrap() error { return ErrCorrupt }
