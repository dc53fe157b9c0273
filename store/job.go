package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// liveVM decodes host's record for a job request by a: ENOTFOUND if
// unknown, ECONFLICT if destroyed, then the ownership rule (Actor.Owns).
func liveVM(tx kv.Tx, host string, a Actor) (VM, error) {
	vm, err := getVM(tx, host)
	if err == nil && vm.State == StateDestroyed {
		err = errs.Errorf(errs.ECONFLICT, "vm %s is destroyed", host)
	} else if err == nil {
		err = a.Owns(&vm)
	}
	return vm, err
}

// queueJob appends j to the job queue with the next id.
func queueJob(tx kv.Tx, j Job) error {
	id, err := tx.NextSequence(bucketJobs)
	if err != nil {
		return err
	}
	j.ID = id
	return putJSON(tx, bucketJobs, seqKey(id), j, "job")
}

// RequestSnapshot adds a pending snapshot to a live VM that by may change
// and queues a job. EINVALID for an empty name; ENOTFOUND if unknown;
// ECONFLICT if destroyed or a pending or done snapshot has that name (a
// failed one is replaced); the ownership rule's errors (Actor.Owns).
func (s *Store) RequestSnapshot(host, name string, by Actor) error {
	if name == "" {
		return errs.Errorf(errs.EINVALID, "a snapshot needs a name")
	}
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		vm, err := liveVM(tx, host, by)
		if err != nil {
			return err
		}
		snaps := vm.Snapshots[:0:0]
		for _, sn := range vm.Snapshots {
			if sn.Name == name && sn.State != JobFailed {
				return errs.Errorf(errs.ECONFLICT, "vm %s already has a snapshot %s", host, name)
			} else if sn.Name != name {
				snaps = append(snaps, sn)
			}
		}
		vm.Snapshots = append(snaps, Snapshot{Name: name, JobStatus: JobStatus{State: JobPending, Requested: now}})
		if err := putVM(tx, &vm); err != nil {
			return err
		}
		return queueJob(tx, Job{Kind: JobSnapshot, Hostname: host, Snapshot: name, Requested: now})
	})
}

// RequestRevert queues a revert to a done snapshot, if by may change the
// VM. ENOTFOUND if the VM or a done snapshot of that name does not exist;
// ECONFLICT if destroyed; the ownership rule's errors (Actor.Owns).
func (s *Store) RequestRevert(host, name string, by Actor) error {
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		vm, err := liveVM(tx, host, by)
		if err != nil {
			return err
		}
		for _, sn := range vm.Snapshots {
			if sn.Name == name && sn.State == JobDone {
				return queueJob(tx, Job{Kind: JobRevert, Hostname: host, Snapshot: name, Requested: now})
			}
		}
		return errs.Errorf(errs.ENOTFOUND, "vm %s has no snapshot %s", host, name)
	})
}

// RequestDisk adds a pending disk to a live VM that by may change and
// queues a job. EINVALID for a size below 1; ENOTFOUND if unknown;
// ECONFLICT if destroyed; the ownership rule's errors (Actor.Owns).
func (s *Store) RequestDisk(host string, sizeGB int, by Actor) error {
	if sizeGB < 1 {
		return errs.Errorf(errs.EINVALID, "disk size must be at least 1 GB")
	}
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		vm, err := liveVM(tx, host, by)
		if err != nil {
			return err
		}
		if err := addDisk(tx, &vm, sizeGB, now); err != nil {
			return err
		}
		return putVM(tx, &vm)
	})
}

// addDisk adds a pending disk to vm (the caller writes it) and queues its job.
func addDisk(tx kv.Tx, vm *VM, sizeGB int, now time.Time) error {
	vm.Disks = append(vm.Disks, Disk{SizeGB: sizeGB, JobStatus: JobStatus{State: JobPending, Requested: now}})
	return queueJob(tx, Job{Kind: JobDisk, Hostname: vm.Hostname, SizeGB: sizeGB, Requested: now})
}

// Jobs returns the queued jobs, oldest first.
func (s *Store) Jobs() ([]Job, error) {
	var out []Job
	err := s.view(func(tx kv.Tx) error {
		return tx.Scan(bucketJobs, nil, nil, func(k, v []byte) (bool, error) {
			var j Job
			if err := json.Unmarshal(v, &j); err != nil {
				return false, fmt.Errorf("decode job %x: %w", k, err)
			}
			out = append(out, j)
			return true, nil
		})
	})
	return out, err
}

// FinishJob records a job's outcome on its VM (done, or failed with jobErr)
// and removes it from the queue. ENOTFOUND if no such job. A job whose VM
// has gone is just removed. A failed revert leaves its snapshot done, with
// the error.
func (s *Store) FinishJob(id uint64, jobErr error) error {
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		j, err := decode(tx.Get(bucketJobs, seqKey(id)), "job %d", id, unmarshalJSON[Job])
		if err != nil {
			return err
		}
		if err := tx.Delete(bucketJobs, seqKey(id)); err != nil {
			return err
		}
		vm, err := getVM(tx, j.Hostname)
		if errs.ErrorCode(err) == errs.ENOTFOUND {
			return nil
		} else if err != nil {
			return err
		}
		recordJob(&vm, &j, jobErr, now)
		return putVM(tx, &vm)
	})
}

// recordJob writes the outcome of j on vm.
func recordJob(vm *VM, j *Job, jobErr error, now time.Time) {
	state, msg := JobDone, ""
	if jobErr != nil {
		state, msg = JobFailed, jobErr.Error()
	}
	switch j.Kind {
	case JobSnapshot:
		for i := range vm.Snapshots {
			if sn := &vm.Snapshots[i]; sn.Name == j.Snapshot && sn.State == JobPending {
				sn.finish(state, now, msg)
				return
			}
		}
	case JobRevert:
		for i := range vm.Snapshots {
			if sn := &vm.Snapshots[i]; sn.Name == j.Snapshot && sn.State == JobDone {
				if jobErr == nil {
					sn.Reverts++
					sn.Error = ""
				} else {
					sn.Error = "revert: " + msg
				}
				return
			}
		}
	case JobDisk:
		match := -1
		for i, dk := range vm.Disks {
			if dk.State == JobPending && dk.SizeGB == j.SizeGB {
				if match < 0 || dk.Requested.Equal(j.Requested) {
					match = i
				}
			}
		}
		if match >= 0 {
			vm.Disks[match].finish(state, now, msg)
		}
	}
}

// seqKey encodes a job id as a key that sorts numerically.
func seqKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }
