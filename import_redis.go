package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vmpooler/vmpooler/auth"
	"github.com/vmpooler/vmpooler/store"
)

// runImportRedis is "vmpooler import-redis -config F redis://host:port/db":
// it copies a live upstream vmpooler's tokens and checked-out VMs from its
// Redis into this pooler's database. Redis is only read (GET, HGETALL,
// SMEMBERS, SCAN). The pooler must be stopped: it holds the database.
// Running it again imports nothing new.
func runImportRedis(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("vmpooler import-redis", "vmpooler import-redis -config F redis://[:password@]host:port/db", stderr)
	path := fs.String("config", "vmpooler.toml", "this pooler's configuration file (TOML); its pools name what is imported")
	if err := parseArgs(fs, args, "import-redis", "upstream's Redis as redis://host:port/db"); err != nil {
		return err
	}
	opts, err := redis.ParseURL(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("import-redis: %s: %w", redactURL(fs.Arg(0)), err)
	}
	// RESP2 and no CLIENT SETINFO: the connection sends nothing but reads.
	opts.Protocol, opts.DisableIdentity = 2, true
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	st, err := openStopped(cfg, "stop the pooler first (the import writes the database)")
	if err != nil {
		return fmt.Errorf("import-redis: %w", err)
	}
	defer st.Close()
	redis.SetLogger(quietRedis{}) // its retries would be logged; the error says it
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	src := redisSource{rdb: rdb, where: redactURL(fs.Arg(0))}
	return importRedis(ctx, src, cfg, st, stdout)
}

// quietRedis discards go-redis's internal log lines.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// redactURL drops the password of a redis:// URL, for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "the Redis URL"
	}
	return u.Redacted()
}

// redisSource reads upstream's keys (see reference/vmpooler-upstream.md:
// vmpooler__token__<token>, vmpooler__vm__<host>, vmpooler__<state>__<pool>).
type redisSource struct {
	rdb   *redis.Client
	where string
}

// scan returns every key matching pattern.
func (r redisSource) scan(ctx context.Context, pattern string) ([]string, error) {
	var keys []string
	it := r.rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("import-redis: %s: SCAN %s: %w", r.where, pattern, err)
	}
	sort.Strings(keys)
	return keys, nil
}

func importRedis(ctx context.Context, r redisSource, cfg *Config, st *store.Store, w io.Writer) error {
	toks, skippedToks, err := r.tokens(ctx)
	if err != nil {
		return err
	}
	res, err := st.ImportTokens(toks, auth.TokenID)
	if err != nil {
		return fmt.Errorf("import-redis: writing tokens: %w", err)
	}
	report(w, "tokens", "token", res, skippedToks)

	vms, skippedVMs, notes, err := r.running(ctx, cfg)
	if err != nil {
		return err
	}
	vres, err := st.ImportRunning(vms)
	if err != nil {
		return fmt.Errorf("import-redis: writing running VMs: %w", err)
	}
	report(w, "running VMs", "vm", vres, skippedVMs)
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	if vres.Imported > 0 {
		fmt.Fprintln(w, "note: the imported VMs carry no ownership marker, but the database knows them: the pooler destroys each at the end of its lifetime, and finds it only in its pool's folder (a VM elsewhere is dropped from the database as vanished, and left alone)")
	}
	return nil
}

// report prints what an import of items (tokens, running VMs) wrote and
// skipped, counting among the skipped those read but not offered to the
// store (skipped); it names each as one item (token, vm).
func report(w io.Writer, items, item string, res store.ImportResult, skipped map[string]string) {
	for k, why := range skipped {
		res.Skipped[k] = why
	}
	fmt.Fprintf(w, "%s: %d imported, %d skipped\n", items, res.Imported, len(res.Skipped))
	printSkipped(w, item, res.Skipped)
}

func printSkipped(w io.Writer, what string, skipped map[string]string) {
	keys := make([]string, 0, len(skipped))
	for k := range skipped {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  skipped %s %s: %s\n", what, k, skipped[k])
	}
}

// tokens reads every vmpooler__token__<token> hash (user, created, last).
// Skipped tokens are named by auth.TokenID, never by the token.
func (r redisSource) tokens(ctx context.Context) ([]store.Token, map[string]string, error) {
	keys, err := r.scan(ctx, "vmpooler__token__*")
	if err != nil {
		return nil, nil, err
	}
	skipped := map[string]string{}
	var toks []store.Token
	for _, k := range keys {
		tok := strings.TrimPrefix(k, "vmpooler__token__")
		h, err := r.rdb.HGetAll(ctx, k).Result()
		if err != nil {
			skipped[auth.TokenID(tok)] = "not a hash: " + redisErr(err)
			continue
		}
		t := store.Token{Token: tok, User: h["user"]}
		if t.User == "" {
			skipped[auth.TokenID(tok)] = "no user"
			continue
		}
		t.Created, _ = parseRubyTime(h["created"]) // zero: now
		t.LastUsed, _ = parseRubyTime(h["last"])
		toks = append(toks, t)
	}
	return toks, skipped, nil
}

// redisErr is err's message without anything that could be a key's value.
func redisErr(err error) string {
	if strings.HasPrefix(err.Error(), "WRONGTYPE") {
		return "WRONGTYPE"
	}
	return err.Error()
}

// running reads each configured pool's vmpooler__running__<pool> set and
// each member's vmpooler__vm__<host> hash. notes count what is not
// imported on purpose (ready and pending VMs, unconfigured pools).
func (r redisSource) running(ctx context.Context, cfg *Config) ([]store.VM, map[string]string, []string, error) {
	skipped := map[string]string{}
	var vms []store.VM
	var notes []string
	configured := map[string]bool{}
	for _, p := range cfg.Pools {
		configured[p.Name] = true
		hosts, err := r.rdb.SMembers(ctx, "vmpooler__running__"+p.Name).Result()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("import-redis: %s: SMEMBERS vmpooler__running__%s: %s", r.where, p.Name, redisErr(err))
		}
		sort.Strings(hosts)
		for _, host := range hosts {
			h, err := r.rdb.HGetAll(ctx, "vmpooler__vm__"+host).Result()
			if err != nil {
				skipped[host] = "its vmpooler__vm__ key is not a hash: " + redisErr(err)
				continue
			}
			vm, why := upstreamVM(host, p.Name, p.Template, h)
			if why != "" {
				skipped[host] = why
				continue
			}
			vms = append(vms, vm)
		}
		for _, state := range []string{"ready", "pending"} {
			n, err := r.rdb.SMembers(ctx, "vmpooler__"+state+"__"+p.Name).Result()
			if err == nil && len(n) > 0 {
				notes = append(notes, fmt.Sprintf("not imported: %d %s VMs of pool %s (this pooler refills the pool; delete them in vCenter once upstream is stopped: they carry no ownership marker, so they are foreign here)", len(n), state, p.Name))
			}
		}
	}
	keys, err := r.scan(ctx, "vmpooler__running__*")
	if err != nil {
		return nil, nil, nil, err
	}
	for _, k := range keys {
		name := strings.TrimPrefix(k, "vmpooler__running__")
		if configured[name] {
			continue
		}
		hosts, err := r.rdb.SMembers(ctx, k).Result()
		if err != nil {
			continue
		}
		for _, host := range hosts {
			skipped[host] = fmt.Sprintf("pool %q is not in %s", name, cfg.file)
		}
	}
	return vms, skipped, notes, nil
}

// upstreamVM makes the record of a running VM from its upstream hash
// (checkout, lifetime, token:user, tag:<name>, ip), or says why not.
func upstreamVM(host, pool, template string, h map[string]string) (store.VM, string) {
	if len(h) == 0 {
		return store.VM{}, "no vmpooler__vm__ hash"
	}
	at, err := parseRubyTime(h["checkout"])
	if err != nil {
		return store.VM{}, fmt.Sprintf("checkout time %q: %v", h["checkout"], err)
	}
	vm := store.VM{Hostname: host, Pool: pool, Template: template, CheckedOut: at,
		User: h["token:user"], IP: h["ip"]}
	if l := h["lifetime"]; l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return store.VM{}, fmt.Sprintf("lifetime %q is not a number of hours", l)
		}
		vm.Lifetime = n
	}
	for k, v := range h {
		if name, ok := strings.CutPrefix(k, "tag:"); ok && name != "" {
			if vm.Tags == nil {
				vm.Tags = map[string]string{}
			}
			vm.Tags[name] = v
		}
	}
	return vm, ""
}

// parseRubyTime reads upstream's timestamps: Ruby's Time#to_s
// ("2026-11-26 22:35:14 +0000"), or RFC 3339.
func parseRubyTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("missing")
	}
	for _, layout := range []string{"2006-01-02 15:04:05 -0700", time.RFC3339Nano, "2006-01-02 15:04:05 MST"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not Ruby's Time#to_s (2006-01-02 15:04:05 -0700)")
}
