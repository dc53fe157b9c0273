package store

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func fullVM() VM {
	t0 := time.Date(2026, 11, 27, 1, 2, 3, 456789, time.UTC)
	return VM{
		Hostname: "fq6qlpjlsskycq6", Pool: "debian-7.2-x86_64", Template: "templates/debian",
		CloneTarget: "cluster1", State: StateRunning,
		Started: t0, Cloned: t0.Add(5 * time.Second), Ready: t0.Add(time.Minute),
		CheckedOut: t0.Add(time.Hour), Completed: t0.Add(2 * time.Hour), Destroyed: t0.Add(3 * time.Hour),
		Lifetime: 48, User: "jdoe", IP: "10.0.0.9", RequestID: "req-1", Reason: "lifetime of 48h expired",
		Tags: map[string]string{"department": "engineering", "user": "jdoe", "": "empty name"},
		Snapshots: []Snapshot{
			{Name: "s1", JobStatus: JobStatus{State: JobDone, Requested: t0, Done: t0.Add(time.Second)}, Reverts: 2},
			{Name: "s2", JobStatus: JobStatus{State: JobFailed, Requested: t0, Error: "no space"}},
		},
		Disks: []Disk{
			{SizeGB: 2048, JobStatus: JobStatus{State: JobPending, Requested: t0}},
			{SizeGB: 1, JobStatus: JobStatus{State: JobDone, Requested: t0, Done: t0}},
		},
	}
}

func TestVMCodecRoundTrip(t *testing.T) {
	for name, vm := range map[string]VM{"full": fullVM(), "zero": {}, "pending": {Hostname: "h", Pool: "p", State: StatePending}} {
		t.Run(name, func(t *testing.T) {
			var got VM
			if err := decodeVM(encodeVM(&vm), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, vm) {
				t.Errorf("round trip:\ngot  %+v\nwant %+v", got, vm)
			}
		})
	}
	vm := fullVM()
	if a, b := encodeVM(&vm), encodeVM(&vm); string(a) != string(b) {
		t.Error("the same record encoded to different bytes")
	}
}

// A file written by the first release (schema 1, VM records in JSON;
// testdata/schema1-json-records.bbolt.gz was made by commit 70b677c's
// store) opens: migration 3 rewrites every record in the binary form,
// nothing is lost, and the JSON reader is gone.
func TestMigrateJSONRecords(t *testing.T) {
	needFile(t)
	s := MustOpenStoreAt(t, schema1File(t), nil)
	// (The fixture's checkout took the two oldest ready VMs, readyvm… and
	// returnedvm…; the old store let runningvm…, still ready, get tags, a
	// lifetime, a snapshot and a disk.)
	want := map[string]State{"pendingvm000001": StatePending, "readyvm00000001": StateRunning,
		"runningvm000001": StateReady, "returnedvm00001": StateCompleted}
	for host, st := range want {
		vm, err := s.Get(host)
		if err != nil || vm.State != st || vm.Pool != "debian-12" || vm.Template != "templates/debian-12" {
			t.Errorf("%s = %+v, %v; want %s in debian-12", host, vm, err, st)
		}
	}
	tagged, _ := s.Get("runningvm000001")
	if tagged.Lifetime != 72 || tagged.Tags["url"] != "https://ci.example/job/1" || tagged.IP != "10.0.0.7" ||
		len(tagged.Snapshots) != 1 || tagged.Snapshots[0].Name != "snapshotone0000000000000000000a1" ||
		len(tagged.Disks) != 1 || tagged.Disks[0].SizeGB != 8 || tagged.CloneTarget != "cluster1" {
		t.Errorf("record lost fields: %+v", tagged)
	}
	if run, _ := s.Get("readyvm00000001"); run.User != "jdoe" || run.Lifetime != 48 || run.CheckedOut.IsZero() {
		t.Errorf("checked-out record lost fields: %+v", run)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVMs).ForEach(func(k, v []byte) error {
			if len(v) == 0 || v[0] != vmCodecV1 {
				t.Errorf("record %s not rewritten: %q", k, v)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if c := s.Counts()["debian-12"]; c.Pending != 1 || c.Ready != 1 || c.Running != 1 || c.Completed != 1 {
		t.Errorf("counts = %+v", c)
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check after the migration: %v", err)
	}
	var vm VM
	if err := decodeVM([]byte(`{"hostname":"x"}`), &vm); err == nil {
		t.Error("a JSON record still decodes: the migration made the reader unneeded")
	}
}

// schema1File writes testdata/schema1-json-records.bbolt.gz out to a file
// in a test directory and returns its path.
func schema1File(tb testing.TB) string {
	tb.Helper()
	gz, err := os.Open(filepath.Join("testdata", "schema1-json-records.bbolt.gz"))
	if err != nil {
		tb.Fatal(err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		tb.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "old.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// A file of an older schema (a backup an older version took, or the
// database before the new version's first start) passes VerifyFile, which
// `vmpooler check` and `restore` run, and stays as it was: the check runs
// on a migrated copy. A damaged one still fails. (Before, the check read
// it as of the current schema and called it corrupt.)
func TestVerifyOlderSchema(t *testing.T) {
	needFile(t)
	path := schema1File(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(path); err != nil {
		t.Errorf("VerifyFile of a schema 1 file: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Error("VerifyFile changed the file")
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketPools).Cursor().First()
		return tx.Bucket(bucketPools).Delete(k)
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(path); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "missing from its index") {
		t.Errorf("VerifyFile of a damaged schema 1 file: %v, want ErrCorrupt naming the missing entry", err)
	}
}

// Every truncation of a record is an error, never a panic or a silent
// partial record.
func TestVMCodecTruncated(t *testing.T) {
	vm := fullVM()
	v := encodeVM(&vm)
	for n := range len(v) {
		var got VM
		if err := decodeVM(v[:n], &got); err == nil {
			t.Fatalf("decoding %d of %d bytes: no error", n, len(v))
		}
	}
	var got VM
	if err := decodeVM(append(v, 0), &got); err == nil {
		t.Error("trailing byte: no error")
	}
}

// Any input decodes without panicking; what decodes survives a re-encode
// unchanged.
func FuzzDecodeVM(f *testing.F) {
	vm := fullVM()
	f.Add(encodeVM(&vm))
	f.Add([]byte{vmCodecV1})
	f.Add([]byte(`{"hostname":"x"}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		var got VM
		if decodeVM(v, &got) != nil || v[0] != vmCodecV1 {
			return
		}
		var again VM
		if err := decodeVM(encodeVM(&got), &again); err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("re-encoding changed the record: %v\n%+v\n%+v", err, got, again)
		}
	})
}
