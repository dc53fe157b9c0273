package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// VM records are the store's hottest values: every checkout and return
// decodes and re-encodes one inside the single writer's commit, and every
// manager pass decodes a whole pool. They are stored in a compact binary
// form (a version byte, then the fields in a fixed order, lengths and
// integers as varints), about ten times cheaper than JSON to read and
// write. Files of schema 1 and 2 may hold JSON records (first byte '{');
// migration 3 rewrites them.

const vmCodecV1 = 1

var errShortRecord = errors.New("truncated vm record")

// encodeVM returns vm's stored form.
func encodeVM(vm *VM) []byte {
	b := make([]byte, 0, 160+len(vm.Reason)+32*len(vm.Tags)+48*(len(vm.Snapshots)+len(vm.Disks)))
	b = append(b, vmCodecV1)
	for _, s := range []string{vm.Hostname, vm.Pool, vm.Template, vm.CloneTarget, string(vm.State),
		vm.User, vm.IP, vm.RequestID, vm.Reason} {
		b = appendString(b, s)
	}
	for _, t := range []time.Time{vm.Started, vm.Cloned, vm.Ready, vm.CheckedOut, vm.Completed, vm.Destroyed} {
		b = appendTime(b, t)
	}
	b = binary.AppendVarint(b, int64(vm.Lifetime))
	keys := make([]string, 0, len(vm.Tags))
	for k := range vm.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same record always encodes to the same bytes
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(appendString(b, k), vm.Tags[k])
	}
	b = binary.AppendUvarint(b, uint64(len(vm.Snapshots)))
	for _, sn := range vm.Snapshots {
		b = appendJobStatus(appendString(b, sn.Name), &sn.JobStatus)
		b = binary.AppendVarint(b, int64(sn.Reverts))
	}
	b = binary.AppendUvarint(b, uint64(len(vm.Disks)))
	for _, d := range vm.Disks {
		b = appendJobStatus(binary.AppendVarint(b, int64(d.SizeGB)), &d.JobStatus)
	}
	return b
}

// appendJobStatus writes j's state, requested and done times and error.
func appendJobStatus(b []byte, j *JobStatus) []byte {
	b = appendString(b, j.State)
	b = appendTime(appendTime(b, j.Requested), j.Done)
	return appendString(b, j.Error)
}

// decodeVM reads a stored VM record.
func decodeVM(v []byte, vm *VM) error {
	if len(v) == 0 || v[0] != vmCodecV1 {
		return errors.New("unknown vm record format")
	}
	r := reader{b: v[1:]}
	var state string
	for _, p := range []*string{&vm.Hostname, &vm.Pool, &vm.Template, &vm.CloneTarget, &state,
		&vm.User, &vm.IP, &vm.RequestID, &vm.Reason} {
		*p = r.string()
	}
	vm.State = State(state)
	for _, p := range []*time.Time{&vm.Started, &vm.Cloned, &vm.Ready, &vm.CheckedOut, &vm.Completed, &vm.Destroyed} {
		*p = r.time()
	}
	vm.Lifetime = int(r.varint())
	if n := r.count(); n > 0 {
		vm.Tags = make(map[string]string, n)
		for range n {
			k := r.string()
			vm.Tags[k] = r.string()
		}
	}
	if n := r.count(); n > 0 {
		vm.Snapshots = make([]Snapshot, n)
		for i := range vm.Snapshots {
			sn := &vm.Snapshots[i]
			sn.Name, sn.JobStatus = r.string(), r.jobStatus()
			sn.Reverts = int(r.varint())
		}
	}
	if n := r.count(); n > 0 {
		vm.Disks = make([]Disk, n)
		for i := range vm.Disks {
			d := &vm.Disks[i]
			d.SizeGB, d.JobStatus = int(r.varint()), r.jobStatus()
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes in vm record")
	}
	return r.err
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendTime writes 0 for the zero time, else 1 + unix nanoseconds (UTC).
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	return binary.AppendVarint(append(b, 1), t.UnixNano())
}

// reader decodes a record, remembering the first error; after an error
// every read returns a zero value.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() { r.b, r.err = nil, errShortRecord }

func (r *reader) uvarint() uint64 { return readVarint(r, binary.Uvarint) }

func (r *reader) varint() int64 { return readVarint(r, binary.Varint) }

// readVarint reads one number with decode (binary.Uvarint or binary.Varint).
func readVarint[T uint64 | int64](r *reader, decode func([]byte) (T, int)) T {
	v, n := decode(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a length of a list, bounded by the bytes left (each element
// takes at least one byte), so a corrupt record cannot ask for a huge slice.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// jobStatus reads what appendJobStatus wrote.
func (r *reader) jobStatus() JobStatus {
	var j JobStatus
	j.State = r.string()
	j.Requested, j.Done = r.time(), r.time()
	j.Error = r.string()
	return j
}

func (r *reader) time() time.Time {
	if len(r.b) == 0 {
		r.fail()
		return time.Time{}
	}
	flag := r.b[0]
	r.b = r.b[1:]
	switch flag {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(0, r.varint()).UTC()
	}
	r.fail()
	return time.Time{}
}

// migrateBinaryVMs (schema 3) rewrites the VM records still in JSON, as
// the first releases wrote them, in the binary form.
func migrateBinaryVMs(tx *bolt.Tx) error {
	b := tx.Bucket(bucketVMs)
	var keys [][]byte // collected first: never write while a cursor walks
	if err := b.ForEach(func(k, v []byte) error {
		if len(v) > 0 && v[0] == '{' {
			keys = append(keys, slices.Clone(k))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		var vm VM
		if err := json.Unmarshal(b.Get(k), &vm); err != nil {
			return fmt.Errorf("vm record %q: %w", k, err)
		}
		if err := b.Put(k, encodeVM(&vm)); err != nil {
			return err
		}
	}
	return nil
}
