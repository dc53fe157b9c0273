package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
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
			{Name: "s1", State: JobDone, Requested: t0, Done: t0.Add(time.Second), Reverts: 2},
			{Name: "s2", State: JobFailed, Requested: t0, Error: "no space"},
		},
		Disks: []Disk{{SizeGB: 2048, State: JobPending, Requested: t0}, {SizeGB: 1, State: JobDone, Requested: t0, Done: t0}},
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

// Records first written as JSON still read.
func TestVMCodecReadsJSON(t *testing.T) {
	want := fullVM()
	v, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got VM
	if err := decodeVM(v, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("json record:\ngot  %+v\nwant %+v", got, want)
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
