package vsphere

import (
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/simtest"
	"github.com/vmpooler/vmpooler/pool"
)

// TestRealVCenter runs a clone, list, ready, snapshot, disk, annotate and
// destroy cycle against a real vCenter, only when VMPOOLER_TEST_VCENTER
// names one:
//
//	VMPOOLER_TEST_VCENTER=https://user:pass@vcenter.example.com/sdk
//	VMPOOLER_TEST_TEMPLATE=templates/centos-7   (required, relative to <dc>/vm/)
//	VMPOOLER_TEST_FOLDER=vmpooler-test          (default; created if missing)
//	VMPOOLER_TEST_DATACENTER, VMPOOLER_TEST_DATASTORE, VMPOOLER_TEST_CLONE_TARGET (optional)
//	VMPOOLER_TEST_INSECURE=1                    (skip TLS verification)
//	VMPOOLER_TEST_READY_CHECK=tools             (default; ssh needs a route to the VM)
func TestRealVCenter(t *testing.T) {
	raw := os.Getenv("VMPOOLER_TEST_VCENTER")
	if raw == "" {
		t.Skip("set VMPOOLER_TEST_VCENTER=https://user:pass@host/sdk to run against a real vCenter")
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		t.Fatalf("VMPOOLER_TEST_VCENTER: want https://user:pass@host/sdk")
	}
	pass, _ := u.User.Password()
	user := u.User.Username()
	u.User = nil
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	pc := pool.PoolConfig{Name: "vmpooler-test", Template: env("VMPOOLER_TEST_TEMPLATE", ""),
		Folder: env("VMPOOLER_TEST_FOLDER", "vmpooler-test"), Datacenter: env("VMPOOLER_TEST_DATACENTER", ""),
		Datastore: env("VMPOOLER_TEST_DATASTORE", ""), CloneTarget: env("VMPOOLER_TEST_CLONE_TARGET", "")}
	if pc.Template == "" {
		t.Fatal("VMPOOLER_TEST_TEMPLATE is required")
	}
	cfg := Config{Server: u.String(), Username: user, Password: pass, Insecure: env("VMPOOLER_TEST_INSECURE", "") != "",
		CreateFolders: true, ReadyCheck: env("VMPOOLER_TEST_READY_CHECK", "tools"), Timeout: 120}
	p := New(cfg, []pool.PoolConfig{pc}, simtest.Logger())
	if err := p.Open(ctxT(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer p.Close()
	name := fmt.Sprintf("vmpooler-test-%d", time.Now().Unix()%1000000)
	ctx := ctxT(t)
	if err := p.Clone(ctx, specFor(pc, name)); err != nil {
		t.Fatalf("Clone: %v", err)
	}
	loc := locFor(pc, name)
	defer func() {
		if err := p.Destroy(ctxT(t), loc); err != nil {
			t.Errorf("Destroy %s: %v (remove it by hand)", name, err)
		}
	}()
	waitReady(t, p, pc, []string{name}, "")
	for what, err := range map[string]error{
		"Snapshot": p.Snapshot(ctx, loc, "vmpooler-test", true),
		"Annotate": p.Annotate(ctx, loc, map[string]string{"vmpooler_test": name}),
		"AddDisk":  p.AddDisk(ctx, loc, 1, "vcenter-test"),
	} {
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	if err := p.Revert(ctx, loc, "vmpooler-test"); err != nil {
		t.Errorf("Revert: %v", err)
	}
}
