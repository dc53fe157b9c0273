// Command vmpooler keeps pools of ready virtual machines in vSphere and hands
// them out over a REST API compatible with Puppet's vmpooler, with all state
// in one bbolt file.
//
// Usage:
//
//	vmpooler [-config vmpooler.toml]            run the pooler (SIGHUP reloads, SIGTERM stops)
//	vmpooler backup -config F -out FILE          copy the database, online or offline
//	vmpooler restore -config F -in FILE          put a backup in place (pooler stopped)
//	vmpooler check -config F [-list-vms]         check the database file
//	vmpooler inventory -config F [-owners]       list the VMs in every pool folder
//	vmpooler adopt -config F -instance ID        take over the VMs of a lost database's pooler
//	vmpooler token list|revoke -config F ...     list or revoke API tokens (pooler stopped)
//	vmpooler import-config vmpooler.yaml         print the TOML equivalent of upstream's YAML
//	vmpooler import-redis -config F redis://...  copy upstream's tokens and checked-out VMs
//	vmpooler simulator -listen ADDR -config F    serve a standalone vCenter simulator
//	vmpooler -version                            print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "vmpooler:", err)
		os.Exit(1)
	}
}

const usage = `vmpooler keeps pools of ready VMs in vSphere and hands them out over a REST API.

Usage:
  vmpooler [serve] [-config vmpooler.toml]     run the pooler: SIGHUP reloads the
                                              config, SIGTERM stops it cleanly
  vmpooler backup -config F -out FILE          consistent copy of the database, taken
                                              from the running pooler (or offline)
  vmpooler restore -config F -in FILE          check a backup and put it in place of
                                              the database (stop the pooler first)
  vmpooler check -config F [-list-vms]         check the database (a file is never created)
  vmpooler inventory -config F [-owners]       list the VMs in every pool folder
  vmpooler adopt -config F -instance ID        take over the VMs of a lost database's
                                              pooler (see README)
  vmpooler token list|revoke -config F ...     list or revoke API tokens (pooler stopped)
  vmpooler import-config vmpooler.yaml         print the TOML equivalent of upstream
                                              vmpooler's YAML (migration, see README)
  vmpooler import-redis -config F redis://H:P/DB
                                              copy upstream's tokens and checked-out VMs
                                              from its Redis (read-only; pooler stopped)
  vmpooler copy-store -from DB -to DB          move a stopped pooler's state between a
                                              bbolt file and etcd://host:2379/prefix
  vmpooler simulator -listen ADDR -config F    serve a standalone vCenter simulator
  vmpooler -version                            print the version and commit

Relative paths in the config file are relative to the file's directory.
Run 'vmpooler <command> -h' for a command's flags.
`

// run dispatches the subcommand; it returns when ctx is cancelled or on error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			fmt.Fprint(stdout, usage)
			return nil
		case "-version", "--version", "version":
			fmt.Fprintln(stdout, versionString())
			return nil
		}
		if !isFlag(args[0]) {
			cmd, args = args[0], args[1:]
		}
	}
	if c, ok := commands[cmd]; ok {
		return c(ctx, args, stdout, stderr)
	}
	return fmt.Errorf("unknown command %q (want %s; see vmpooler -h)", cmd, strings.Join(slices.Sorted(maps.Keys(commands)), ", "))
}

// A command runs one subcommand with its own arguments.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// commands maps each subcommand to its function; those that need no
// context or no stdout are adapted here, so their own signatures stay plain.
var commands = map[string]command{
	"serve": func(ctx context.Context, args []string, _, stderr io.Writer) error {
		return runServe(ctx, args, stderr, nil)
	},
	"simulator": func(ctx context.Context, args []string, _, stderr io.Writer) error {
		return runSimulator(ctx, args, stderr)
	},
	"inventory":     runInventory,
	"import-redis":  runImportRedis,
	"backup":        offline(runBackup),
	"restore":       offline(runRestore),
	"check":         offline(runCheck),
	"adopt":         offline(runAdopt),
	"token":         offline(runToken),
	"import-config": offline(runImportConfig),
	"copy-store":    offline(runCopyStore),
}

// offline adapts a command that runs to completion without a context.
func offline(f func(args []string, stdout, stderr io.Writer) error) command {
	return func(_ context.Context, args []string, stdout, stderr io.Writer) error {
		return f(args, stdout, stderr)
	}
}

func isFlag(s string) bool { return len(s) > 0 && s[0] == '-' }

// versionString is the module version and the commit the binary was built
// from, as the Go toolchain recorded them.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "vmpooler (no build information)"
	}
	rev, when, dirty := "unknown", "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+modified"
			}
		}
	}
	return fmt.Sprintf("vmpooler %s (commit %s%s%s, %s)", bi.Main.Version, rev, dirty, when, bi.GoVersion)
}

// newFlags returns a flag set whose -h shows the command's line of the usage.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\nAll commands: vmpooler -h\n")
	}
	return fs
}

// loadFlags parses -config (and any extra flags) and loads the configuration.
func loadFlags(name, synopsis string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*Config, error) {
	fs := newFlags(name, synopsis, stderr)
	path := fs.String("config", "vmpooler.toml", "configuration file (TOML); relative paths in it are relative to its directory")
	if extra != nil {
		extra(fs)
	}
	if err := parseArgs(fs, args, name, ""); err != nil {
		return nil, err
	}
	return LoadConfig(*path)
}

// parseArgs parses args into fs and checks the arguments after the flags:
// none when what is "", else exactly one, which what describes.
func parseArgs(fs *flag.FlagSet, args []string, cmd, what string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case what == "" && fs.NArg() > 0:
		return fmt.Errorf("%s: unexpected arguments %q", cmd, fs.Args())
	case what != "" && fs.NArg() != 1:
		return fmt.Errorf("%s: want one argument, %s", cmd, what)
	}
	return nil
}

// loadRequired is loadFlags for a command (cmd, as in "vmpooler cmd") with
// one required string flag, whose value it returns.
func loadRequired(cmd, synopsis string, args []string, stderr io.Writer, name, usage string) (*Config, string, error) {
	var v string
	cfg, err := loadFlags("vmpooler "+cmd, synopsis, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&v, name, "", usage)
	})
	if err == nil && v == "" {
		err = fmt.Errorf("%s: -%s is required", cmd, name)
	}
	return cfg, v, err
}

// parseLevel reads a log_level ("" is info).
func parseLevel(level string) (slog.Level, error) {
	var l slog.Level
	if level == "" {
		return slog.LevelInfo, nil
	}
	err := l.UnmarshalText([]byte(level))
	return l, err
}

func newLogger(w io.Writer, level string) *slog.Logger {
	l, _ := parseLevel(level)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
