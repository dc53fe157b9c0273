package store

import (
	"errors"
	"testing"

	"github.com/vmpooler/vmpooler/internal/errs"
)

func TestJobs(t *testing.T) {
	s := MustOpenStore(t)
	fillReady(t, s, "p", "", 1)
	if err := s.RequestSnapshot("p-0", "s1", Anyone); err != nil {
		t.Fatal(err)
	}
	mustCode(t, s.RequestSnapshot("p-0", "s1", Anyone), errs.ECONFLICT)
	mustCode(t, s.RequestSnapshot("p-0", "", Anyone), errs.EINVALID)
	mustCode(t, s.RequestSnapshot("nope", "s1", Anyone), errs.ENOTFOUND)
	mustCode(t, s.RequestRevert("p-0", "s1", Anyone), errs.ENOTFOUND) // not done yet
	if err := s.RequestDisk("p-0", 20, Anyone); err != nil {
		t.Fatal(err)
	}
	mustCode(t, s.RequestDisk("p-0", 0, Anyone), errs.EINVALID)
	mustCode(t, s.RequestDisk("nope", 1, Anyone), errs.ENOTFOUND)

	jobs, err := s.Jobs()
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].Kind != JobSnapshot || jobs[0].Snapshot != "s1" || jobs[1].Kind != JobDisk || jobs[1].SizeGB != 20 || jobs[0].ID >= jobs[1].ID {
		t.Fatalf("jobs: %+v", jobs)
	}
	if err := s.FinishJob(jobs[0].ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishJob(jobs[1].ID, errors.New("datastore full")); err != nil {
		t.Fatal(err)
	}
	mustCode(t, s.FinishJob(jobs[0].ID, nil), errs.ENOTFOUND)
	vm, _ := s.Get("p-0")
	if sn := vm.Snapshots[0]; sn.State != JobDone || sn.Done.IsZero() {
		t.Errorf("snapshot: %+v", sn)
	}
	if dk := vm.Disks[0]; dk.State != JobFailed || dk.Error != "datastore full" {
		t.Errorf("disk: %+v", dk)
	}

	t.Run("Revert", func(t *testing.T) {
		if err := s.RequestRevert("p-0", "s1", Anyone); err != nil {
			t.Fatal(err)
		}
		jobs, _ := s.Jobs()
		if len(jobs) != 1 || jobs[0].Kind != JobRevert {
			t.Fatalf("jobs: %+v", jobs)
		}
		s.FinishJob(jobs[0].ID, nil)
		if vm, _ := s.Get("p-0"); vm.Snapshots[0].Reverts != 1 {
			t.Errorf("reverts: %+v", vm.Snapshots[0])
		}
	})
	t.Run("FailedSnapshotIsReplaced", func(t *testing.T) {
		s.RequestSnapshot("p-0", "s2", Anyone)
		jobs, _ := s.Jobs()
		s.FinishJob(jobs[0].ID, errors.New("boom"))
		if err := s.RequestSnapshot("p-0", "s2", Anyone); err != nil {
			t.Fatal(err)
		}
		if vm, _ := s.Get("p-0"); len(vm.Snapshots) != 2 || vm.Snapshots[1].State != JobPending {
			t.Errorf("snapshots: %+v", vm.Snapshots)
		}
	})
	t.Run("VMGone", func(t *testing.T) {
		s.Destroy("p-0", "")
		mustCode(t, s.RequestSnapshot("p-0", "s3", Anyone), errs.ECONFLICT)
		mustCode(t, s.RequestDisk("p-0", 1, Anyone), errs.ECONFLICT)
		jobs, _ := s.Jobs()
		for _, j := range jobs {
			if err := s.FinishJob(j.ID, nil); err != nil {
				t.Error(err)
			}
		}
		if jobs, _ := s.Jobs(); len(jobs) != 0 {
			t.Errorf("jobs left: %+v", jobs)
		}
	})
}
