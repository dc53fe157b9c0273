package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vmpooler/vmpooler/bench/internal/fakepool"
	"github.com/vmpooler/vmpooler/internal/testenv"
)

// The test binary doubles as a fake vmpooler (serve, simulator, check,
// inventory) when BENCH_CRASH_FAKE is set, so the harness can be run end to
// end without the real binary. Its state is a JSON file written before each
// answer, so it survives SIGKILL. BENCH_CRASH_FAKE=reuse injects a bug.
func TestMain(m *testing.M) {
	if mode := os.Getenv("BENCH_CRASH_FAKE"); mode != "" {
		if err := fakeMain(mode, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "fake:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type fakeConfig struct {
	listen, db string
	pools      map[string]int
}

func readFakeConfig(args []string) (fakeConfig, error) {
	c := fakeConfig{pools: map[string]int{}}
	var path string
	for i, a := range args {
		if a == "-config" && i+1 < len(args) {
			path = args[i+1]
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return c, err
	}
	defer f.Close()
	var pool string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " = ")
		if !ok {
			continue
		}
		uq, _ := strconv.Unquote(v)
		switch k {
		case "listen":
			c.listen = uq
		case "database":
			c.db = uq
		case "name":
			pool = uq
		case "size":
			c.pools[pool], _ = strconv.Atoi(v)
		}
	}
	return c, sc.Err()
}

func loadFake(c fakeConfig) *fakepool.Server {
	fp := fakepool.New(c.pools)
	if b, err := os.ReadFile(c.db); err == nil {
		var st fakepool.State
		if json.Unmarshal(b, &st) == nil {
			fp.Restore(st)
		}
	}
	return fp
}

func fakeMain(mode string, args []string) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	c, err := readFakeConfig(args)
	if err != nil {
		return err
	}
	switch cmd {
	case "simulator":
		ln, err := net.Listen("tcp", args[1]) // -listen ADDR
		if err != nil {
			return err
		}
		go func() { <-ctx.Done(); ln.Close() }()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return nil
			}
			conn.Close()
		}
	case "check", "inventory":
		if cmd == "check" && !strings.Contains(strings.Join(args, " "), "-list-vms") {
			fmt.Println(c.db + ": ok")
			return nil
		}
		for _, h := range loadFake(c).Live() {
			fmt.Println(h)
		}
		return nil
	}
	fp := loadFake(c)
	fp.Reuse = mode == "reuse"
	fp.Save = func(st fakepool.State) error {
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		tmp := c.db + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return err
		}
		return os.Rename(tmp, c.db)
	}
	srv := &http.Server{Addr: c.listen, Handler: fp}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func TestHarnessAgainstFake(t *testing.T) {
	testenv.SkipIfShort(t, "runs processes for a few seconds")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode     string
		wantCode int
		want     []string
	}{
		{"ok", 0, []string{"PASS (a) no hostname handed out twice", "PASS (b) store check", "PASS (c)", "PASS (d)", "PASS restarts: 2 of 2", "RESULT: PASS"}},
		{"reuse", 1, []string{"FAIL (a) no hostname handed out twice", "VIOLATIONS:", "RESULT: FAIL"}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			t.Setenv("BENCH_CRASH_FAKE", c.mode)
			t.Setenv("TMPDIR", t.TempDir())
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{"-bin", self, "-kills", "2", "-clients", "4", "-duration", "2s", "-seed", "3", "-converge", "5s"}, &out, &errOut)
			if code != c.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, c.wantCode, out.String(), errOut.String())
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			t.Log(out.String())
			if c.wantCode == 0 {
				if left, _ := filepath.Glob(filepath.Join(os.Getenv("TMPDIR"), "vmpooler-crash-*")); len(left) != 0 {
					t.Errorf("temporary directory left behind: %v", left)
				}
			}
		})
	}
}
