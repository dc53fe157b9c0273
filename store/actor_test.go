package store

import (
	"testing"

	"github.com/vmpooler/vmpooler/internal/errs"
)

// The ownership rule is applied in the transaction that makes the change,
// so it holds whichever process (replica) serves the request.
func TestOwnerRuleInTheChangingTransaction(t *testing.T) {
	s, vms := openWithRunning(t, 2, 1, "alice")
	host := vms[0].Hostname
	alice, bob, noToken := Actor{User: "alice", Checked: true}, Actor{User: "bob", Checked: true}, Actor{Checked: true}

	_, err := s.Change(host, VMChange{Lifetime: 9, Tags: map[string]string{"team": "b"}, DiskGB: 8}, bob)
	mustCode(t, err, errs.EFORBIDDEN)
	_, err = s.Change(host, VMChange{Tags: map[string]string{"team": "x"}}, noToken)
	mustCode(t, err, errs.EUNAUTHORIZED)
	mustCode(t, s.RequestSnapshot(host, "s1", bob), errs.EFORBIDDEN)
	mustCode(t, s.RequestDisk(host, 4, bob), errs.EFORBIDDEN)
	mustCode(t, s.Return(host, "returned", bob), errs.EFORBIDDEN)
	if vm, _ := s.Get(host); vm.State != StateRunning || vm.Lifetime != 0 || len(vm.Tags) != 0 || len(vm.Disks) != 0 || len(vm.Snapshots) != 0 {
		t.Fatalf("refused changes left a trace: %+v", vm)
	}
	if jobs, _ := s.Jobs(); len(jobs) != 0 {
		t.Fatalf("refused changes queued jobs: %+v", jobs)
	}

	vm, err := s.Change(host, VMChange{Lifetime: 9, Tags: map[string]string{"team": "a"}, DiskGB: 8}, alice)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Lifetime != 9 || vm.Tags["team"] != "a" || len(vm.Disks) != 1 || vm.Disks[0].SizeGB != 8 || vm.Disks[0].State != JobPending {
		t.Fatalf("one change, all of it: %+v", vm)
	}
	if jobs, _ := s.Jobs(); len(jobs) != 1 || jobs[0].Kind != JobDisk || jobs[0].SizeGB != 8 {
		t.Fatalf("jobs %+v, want the disk", jobs)
	}
	if _, err := s.Change("p-1", VMChange{Lifetime: 2}, Anyone); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Fatalf("change of a ready vm: %v, want ENOTFOUND", err)
	}
	if err := s.Return(host, "returned", alice); err != nil {
		t.Fatal(err)
	}
	if vm, _ := s.Get(host); vm.State != StateCompleted {
		t.Fatalf("returned vm is %s", vm.State)
	}
}

func TestDeleteTokenOwner(t *testing.T) {
	s := MustOpenStore(t)
	if err := s.CreateToken(Token{Token: "tok-a", User: "alice"}); err != nil {
		t.Fatal(err)
	}
	mustCode(t, s.DeleteToken("tok-a", "bob"), errs.EFORBIDDEN)
	if _, err := s.GetToken("tok-a"); err != nil {
		t.Fatalf("refused delete removed the token: %v", err)
	}
	if err := s.DeleteToken("tok-a", "alice"); err != nil {
		t.Fatal(err)
	}
	mustCode(t, s.DeleteToken("tok-a", ""), errs.ENOTFOUND)
}

func TestChangeOverrides(t *testing.T) {
	s := MustOpenStore(t)
	before, err := s.ChangeOverrides([]OverrideChange{
		{Pool: "a", Field: FieldSize, Value: "3", Configured: "2"},
		{Pool: "a", Field: FieldTemplate, Value: "tpl/new", Configured: "tpl/old"},
		{Pool: "b", Field: FieldSize, Value: "2", Configured: "2"}, // in force already: nothing written
	})
	if err != nil || len(before) != 0 {
		t.Fatalf("first change: before %v, err %v", before, err)
	}
	ovr, _ := s.Overrides()
	if a := ovr["a"]; a.Size == nil || *a.Size != 3 || a.Template != "tpl/new" || len(ovr) != 1 {
		t.Fatalf("overrides %+v", ovr)
	}
	before, err = s.ChangeOverrides([]OverrideChange{{Pool: "a", Field: FieldSize, Configured: "2", Clear: true}})
	if err != nil || before["a"].Size == nil || *before["a"].Size != 3 {
		t.Fatalf("clear: before %+v, err %v", before, err)
	}
	ovr, _ = s.Overrides()
	if a := ovr["a"]; a.Size != nil || a.Template != "tpl/new" {
		t.Fatalf("after clearing the size: %+v", ovr)
	}
	_, err = s.ChangeOverrides([]OverrideChange{{Pool: "a", Field: FieldSize, Value: "-1"}})
	mustCode(t, err, errs.EINVALID)
	_, err = s.ChangeOverrides([]OverrideChange{{Pool: "a", Field: "colour", Value: "red"}})
	mustCode(t, err, errs.EINVALID)
}
