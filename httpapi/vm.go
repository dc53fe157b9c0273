package httpapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
)

// parseHost returns the short hostname of a short or fully qualified name:
// the part before the first dot, as upstream's hostname_shorten. EINVALID
// unless every label is 1..63 of [A-Za-z0-9_-] and the name is ≤ 253 bytes.
func parseHost(name string) (string, error) {
	bad := errs.Errorf(errs.EINVALID, "Invalid hostname format")
	if name == "" || len(name) > 253 {
		return "", bad
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || !pool.ValidChars(label, "-_") {
			return "", bad
		}
	}
	short, _, _ := strings.Cut(name, ".")
	return short, nil
}

// hostname writes a VM's name for version v: short for v1, fully
// qualified with its pool's domain (when there is one) for v2 and later.
func (s *server) hostname(v version, host, poolName string) string {
	if d := s.svc.Domain(poolName); v.fqdn() && d != "" {
		return host + "." + d
	}
	return host
}

// MaxPoolListNames bounds the names of one POST /vm/<a>+<b>+... path
// (repetitions included): the path is read before authentication.
const MaxPoolListNames = 256

// parsePoolList reads "a+b+a" (repetition = count) into wants in order of
// first appearance, in time linear in its length. EINVALID for an empty
// name, more than MaxPoolListNames names or more than
// pool.MaxCheckoutCount of one name.
func parsePoolList(list string) ([]pool.Want, error) {
	if n := strings.Count(list, "+") + 1; n > MaxPoolListNames {
		return nil, errs.Errorf(errs.EINVALID, "At most %d pool names in one request (got %d)", MaxPoolListNames, n)
	}
	var wants []pool.Want
	at := make(map[string]int) // name → index in wants
	for name := range strings.SplitSeq(list, "+") {
		if name == "" {
			return nil, errs.Errorf(errs.EINVALID, "Pool name is required (empty name in %q)", list)
		}
		i, ok := at[name]
		if !ok {
			at[name] = len(wants)
			wants = append(wants, pool.Want{Name: name, Count: 1})
			continue
		}
		if wants[i].Count++; wants[i].Count > pool.MaxCheckoutCount {
			return nil, errs.Errorf(errs.EINVALID, "VM count must be at most %d", pool.MaxCheckoutCount)
		}
	}
	return wants, nil
}

// wantList writes wants for the audit trail: "a*2,b".
func wantList(wants []pool.Want) string {
	parts := make([]string, len(wants))
	for i, w := range wants {
		parts[i] = w.Name
		if w.Count > 1 {
			parts[i] += "*" + strconv.Itoa(w.Count)
		}
	}
	return strings.Join(parts, ",")
}

// parseCheckoutBody reads a POST /vm body {"<pool or alias>": "<count>"|<count>}
// into wants sorted by name.
func parseCheckoutBody(body map[string]any) ([]pool.Want, error) {
	wants := make([]pool.Want, 0, len(body))
	for name, v := range body {
		n, err := parseCount(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		wants = append(wants, pool.Want{Name: name, Count: n})
	}
	slices.SortFunc(wants, func(a, b pool.Want) int { return strings.Compare(a.Name, b.Name) })
	return wants, nil
}

// handleVMList answers GET /vm: the pool names in config order (an array, as the seed).
func (s *server) handleVMList(w http.ResponseWriter, r *http.Request, c call) error {
	writeJSON(w, http.StatusOK, s.svc.Pools())
	return nil
}

// handleCheckoutBody answers POST /vm with a JSON body.
func (s *server) handleCheckoutBody(w http.ResponseWriter, r *http.Request, c call) error {
	var body map[string]any
	if err := readJSON(w, r, &body); err != nil {
		return err
	}
	wants, err := parseCheckoutBody(body)
	if err != nil {
		return err
	}
	return s.checkout(w, r, c, wants)
}

// handleCheckoutPath answers POST /vm/<pool>[+<pool>...]; the body is ignored.
func (s *server) handleCheckoutPath(w http.ResponseWriter, r *http.Request, c call) error {
	wants, err := parsePoolList(c.ps.ByName("name"))
	if err != nil {
		return err
	}
	return s.checkout(w, r, c, wants)
}

// checkout hands out VMs and answers {"ok":true,"<name>":{"hostname":...}},
// with one string per name for one VM and an array for several, plus the
// v1 "domain" key. Unknown names are 404 before the token is looked at.
func (s *server) checkout(w http.ResponseWriter, r *http.Request, c call, wants []pool.Want) error {
	if len(wants) == 0 {
		return errs.Errorf(errs.ENOTFOUND, "no pool requested")
	}
	for _, want := range wants {
		if _, ok := s.svc.Resolve(want.Name); !ok {
			return errs.Errorf(errs.ENOTFOUND, "unknown pool or alias %q", want.Name)
		}
	}
	caller, err := s.caller(r, true)
	if err != nil {
		return err
	}
	wait, err := s.checkoutWait(r)
	if err != nil {
		return err
	}
	var got map[string][]store.VM
	if wait > 0 {
		// The answer may come as late as the wait allows: past the
		// server's write timeout.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 30*time.Second))
		start := time.Now()
		got, err = s.svc.CheckoutWait(r.Context(), wants, caller, wait)
		if r.Context().Err() != nil {
			return nil // the client went away: nobody to answer
		}
		s.metrics.observeWait(time.Since(start), errs.ErrorCode(err) == errs.EEMPTY)
	} else {
		got, err = s.svc.Checkout(wants, caller)
	}
	if err != nil {
		return err
	}
	var hosts []string
	for _, want := range wants {
		for _, vm := range got[want.Name] {
			hosts = append(hosts, vm.Hostname)
		}
	}
	s.auditCaller(r, "checkout", caller, "pools", wantList(wants), "hosts", strings.Join(hosts, ","))
	out, domain := obj{{"ok", true}}, ""
	for _, want := range wants {
		vms := got[want.Name]
		names := make([]string, len(vms))
		for i, vm := range vms {
			names[i] = s.hostname(c.v, vm.Hostname, vm.Pool)
			if domain == "" {
				domain = s.svc.Domain(vm.Pool)
			}
		}
		var h any = names
		if len(names) == 1 {
			h = names[0]
		}
		out = append(out, kv{want.Name, obj{{"hostname", h}}})
	}
	if !c.v.fqdn() && domain != "" {
		out = append(out, kv{"domain", domain})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// checkoutWait is how long a checkout may wait for its VMs: ?wait=<seconds>,
// else [config] checkout_wait, capped by max_checkout_wait. EINVALID for a
// wait that is not a whole number of seconds from 0.
func (s *server) checkoutWait(r *http.Request) (time.Duration, error) {
	cfg := s.svc.Current()
	secs := cfg.CheckoutWait
	if q := r.URL.Query(); q.Has("wait") {
		n, err := strconv.Atoi(q.Get("wait"))
		if err != nil || n < 0 {
			return 0, errs.Errorf(errs.EINVALID, "wait must be a whole number of seconds from 0 (got %q)", q.Get("wait"))
		}
		secs = n
	}
	if limit := cfg.MaxCheckoutWait; limit > 0 && secs > limit {
		secs = limit
	}
	return time.Duration(secs) * time.Second, nil
}

// vmDetail is the GET /vm/<host> answer for one VM, in upstream's key order.
type vmDetail struct {
	Template  string            `json:"template"`
	Lifetime  int               `json:"lifetime"`
	Running   float64           `json:"running"`
	Remaining *float64          `json:"remaining,omitempty"`
	StartTime string            `json:"start_time,omitempty"`
	EndTime   string            `json:"end_time,omitempty"`
	State     store.State       `json:"state"`
	Tags      map[string]string `json:"tags,omitempty"`
	Snapshots []string          `json:"snapshots,omitempty"`
	Disk      []string          `json:"disk,omitempty"`
	IP        string            `json:"ip"`
	Domain    string            `json:"domain,omitempty"` // v1
	FQDN      string            `json:"fqdn,omitempty"`   // v2 and later
}

// handleVMGet answers GET /vm/<host>, keyed by the short hostname even
// when asked with a fully qualified name, as upstream's v1 and v3
// (result[hostname_shorten(...)]).
func (s *server) handleVMGet(w http.ResponseWriter, r *http.Request, c call) error {
	host, v, err := s.vmRead(r, c)
	if err != nil {
		return err
	}
	d := vmDetail{Template: v.Pool, Lifetime: v.Lifetime, Running: v.Running, State: v.State,
		Tags: v.Tags, IP: v.IP}
	if !v.CheckedOut.IsZero() {
		d.StartTime = v.CheckedOut.Local().Format(time.RFC3339)
		d.EndTime = v.End.Local().Format(time.RFC3339)
		if v.State == store.StateRunning {
			d.Remaining = &v.Remaining
		}
	}
	for _, sn := range v.Snapshots {
		if sn.State == store.JobDone {
			d.Snapshots = append(d.Snapshots, sn.Name)
		}
	}
	for _, dk := range v.Disks {
		if dk.State == store.JobDone {
			d.Disk = append(d.Disk, fmt.Sprintf("+%dgb", dk.SizeGB))
		}
	}
	if c.v.fqdn() {
		d.FQDN = s.hostname(c.v, v.Hostname, v.Pool)
	} else {
		d.Domain = v.Domain
	}
	writeJSON(w, http.StatusOK, obj{{"ok", true}, {host, d}})
	return nil
}

// handleVMModify answers PUT /vm/<host> {"lifetime":n,"tags":{...},"disk":n}:
// 200, or 202 when a disk was queued.
func (s *server) handleVMModify(w http.ResponseWriter, r *http.Request, c call) error {
	var body map[string]json.RawMessage
	host, caller, err := s.vmTarget(r, c, lenient, func() error { return readJSON(w, r, &body) })
	if err != nil {
		return err
	}
	m := parseModification(body)
	if err := s.svc.Modify(host, m, caller); err != nil {
		return err
	}
	attrs := []any{"host", host}
	if m.Lifetime != nil {
		attrs = append(attrs, "lifetime", *m.Lifetime)
	}
	if len(m.Tags) > 0 {
		attrs = append(attrs, "tags", strings.Join(slices.Sorted(maps.Keys(m.Tags)), ","))
	}
	if m.Disk != nil {
		attrs = append(attrs, "disk_gb", *m.Disk)
	}
	s.auditCaller(r, "modify", caller, attrs...)
	if m.Disk != nil { // queued: answered as POST /vm/<host>/disk/<n>
		writeJSON(w, http.StatusAccepted, obj{{"ok", true}, {host, obj{{"disk", fmt.Sprintf("+%dgb", *m.Disk)}}}})
		return nil
	}
	writeJSON(w, http.StatusOK, obj{{"ok", true}})
	return nil
}

// parseModification turns a PUT body into a pool.Modification, collecting
// problems in Failures with upstream's wording.
func parseModification(body map[string]json.RawMessage) pool.Modification {
	var m pool.Modification
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		raw := body[k]
		switch k {
		case "lifetime":
			if string(raw) == "null" {
				continue
			}
			arg := jsonText(raw)
			n, err := strconv.Atoi(strings.TrimSpace(arg))
			if err != nil {
				n = 0 // reported as not positive, as upstream's to_i
			}
			m.Lifetime, m.LifetimeArg = &n, arg
		case "tags":
			m.Tags = parseTags(raw, &m.Failures)
		case "disk": // vmfloaty's "modify --disk N": an add-disk request
			if string(raw) == "null" {
				continue
			}
			arg := jsonText(raw)
			n, err := strconv.Atoi(strings.TrimSpace(arg))
			if err != nil {
				n = 0 // reported as out of range
			}
			m.Disk, m.DiskArg = &n, arg
		default:
			m.Failures = append(m.Failures, fmt.Sprintf("Unknown argument %s.", jsonText(raw)))
		}
	}
	return m
}

// jsonText is a JSON value as text: a string's contents, else the raw JSON.
func jsonText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// Limits of one PUT's tags (README, API "Limits"): more tags, a longer key or a
// longer value is 400. They bound the work of a PUT; the store's cost is
// one read and one write per changed tag whatever the day already holds.
const (
	maxTags     = 100
	maxTagKey   = 50
	maxTagValue = 255
)

// parseTags reads a tags object; numbers and booleans become strings, nulls
// are skipped (upstream dropped booleans silently: issue #135).
func parseTags(raw json.RawMessage, failures *[]string) map[string]string {
	var in map[string]any
	if err := decodeJSON(raw, &in); err != nil || (in == nil && string(raw) != "null") {
		*failures = append(*failures, fmt.Sprintf("You provided tags (%s) as something other than a hash.", raw))
		return nil
	}
	if len(in) > maxTags {
		*failures = append(*failures, fmt.Sprintf("You provided %d tags; at most %d are accepted in one request.", len(in), maxTags))
		return nil
	}
	tags := make(map[string]string, len(in))
	for k, v := range in {
		if !validTagKey(k) {
			*failures = append(*failures, fmt.Sprintf("Invalid tag key format (%q): 1 to %d of A-Z a-z 0-9 _ . -", k, maxTagKey))
			continue
		}
		if v == nil {
			continue
		}
		val, ok := scalar(v)
		if b, isBool := v.(bool); isBool {
			val, ok = strconv.FormatBool(b), true
		}
		if !ok {
			*failures = append(*failures, fmt.Sprintf("Tag %q must have a string value.", k))
			continue
		}
		if len(val) > maxTagValue || strings.ContainsFunc(val, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			*failures = append(*failures, fmt.Sprintf("Tag %q has a value that is too long or contains control characters.", k))
			continue
		}
		tags[k] = val
	}
	slices.Sort(*failures)
	return tags
}

func validTagKey(k string) bool {
	return k != "" && len(k) <= maxTagKey && pool.ValidChars(k, "_.-")
}

// who says whose token a VM route reads.
type who int

const (
	anyone  who = iota // no token read: reads of a VM
	lenient            // an invalid token is anonymous
	strict             // an invalid token is 401
)

// vmTarget reads a /vm/<name>/... route: the host it names, the short
// hostname also for a fully qualified name (as upstream's
// hostname_shorten; answers are keyed by it), and, unless w is anyone,
// the caller. before, when set, runs between the two: the route's other
// parts and the body are checked before the token, as they always were.
func (s *server) vmTarget(r *http.Request, c call, w who, before func() error) (host string, caller pool.Caller, err error) {
	if host, err = parseHost(c.ps.ByName("name")); err != nil {
		return "", caller, err
	}
	if before != nil {
		if err := before(); err != nil {
			return "", caller, err
		}
	}
	if w != anyone {
		caller, err = s.caller(r, w == strict)
	}
	return host, caller, err
}

// vmRead reads the VM that a read-only /vm/<name>/... route names.
func (s *server) vmRead(r *http.Request, c call) (string, pool.VMView, error) {
	host, _, err := s.vmTarget(r, c, anyone, nil)
	if err != nil {
		return "", pool.VMView{}, err
	}
	v, err := s.svc.Get(host)
	return host, v, err
}

// handleVMDelete answers DELETE /vm/<host>: a running VM is scheduled for
// destruction; any other is 404.
func (s *server) handleVMDelete(w http.ResponseWriter, r *http.Request, c call) error {
	return s.vmChange(w, r, c, "return", lenient, http.StatusOK, nil, func(host string, caller pool.Caller) (obj, []any, error) {
		return nil, nil, s.svc.Return(host, caller)
	})
}

// vmChange serves a route that changes a VM for its caller: it reads the
// route as vmTarget does (tok and before as there), runs do, audits action
// with the host and the attributes do returns, and answers code with
// {"ok": true} and, when do returns one, the host's entry.
func (s *server) vmChange(w http.ResponseWriter, r *http.Request, c call, action string, tok who, code int, before func() error,
	do func(host string, caller pool.Caller) (entry obj, attrs []any, err error)) error {
	host, caller, err := s.vmTarget(r, c, tok, before)
	if err != nil {
		return err
	}
	entry, attrs, err := do(host, caller)
	if err != nil {
		return err
	}
	s.auditCaller(r, action, caller, append([]any{"host", host}, attrs...)...)
	answer := obj{{"ok", true}}
	if entry != nil {
		answer = append(answer, kv{host, entry})
	}
	writeJSON(w, code, answer)
	return nil
}

// handleSnapshot answers POST /vm/<host>/snapshot with 202 and the snapshot's name.
func (s *server) handleSnapshot(w http.ResponseWriter, r *http.Request, c call) error {
	return s.vmChange(w, r, c, "snapshot", strict, http.StatusAccepted, nil, func(host string, caller pool.Caller) (obj, []any, error) {
		snap, err := s.svc.Snapshot(host, caller)
		return obj{{"snapshot", snap}}, []any{"snapshot", snap}, err
	})
}

// handleRevert answers POST /vm/<host>/snapshot/<snapshot> with 202.
func (s *server) handleRevert(w http.ResponseWriter, r *http.Request, c call) error {
	return s.vmChange(w, r, c, "revert", strict, http.StatusAccepted, nil, func(host string, caller pool.Caller) (obj, []any, error) {
		snap := c.ps.ByName("snapshot")
		return nil, []any{"snapshot", snap}, s.svc.Revert(host, snap, caller)
	})
}

// handleSnapshotGet answers GET /vm/<host>/snapshot[/<snapshot>] with the
// snapshots' states (pending, done, failed and why), so a client can follow
// an asynchronous snapshot. It is read-only: the API document's revert
// example ("curl X POST ...") sends a GET by mistake, and gets {"ok":true}
// for an existing snapshot instead of reverting.
func (s *server) handleSnapshotGet(w http.ResponseWriter, r *http.Request, c call) error {
	host, v, err := s.vmRead(r, c)
	if err != nil {
		return err
	}
	want := c.ps.ByName("snapshot")
	snaps := make([]obj, 0, len(v.Snapshots))
	for _, sn := range v.Snapshots {
		if want != "" && sn.Name != want {
			continue
		}
		o := obj{{"snapshot", sn.Name}, {"state", sn.State}, {"requested", sn.Requested.UTC().Format(time.RFC3339)}}
		if !sn.Done.IsZero() {
			o = append(o, kv{"done", sn.Done.UTC().Format(time.RFC3339)})
		}
		if sn.Error != "" {
			o = append(o, kv{"error", sn.Error})
		}
		snaps = append(snaps, o)
	}
	if want == "" {
		writeJSON(w, http.StatusOK, obj{{"ok", true}, {host, obj{{"snapshots", snaps}}}})
		return nil
	}
	if len(snaps) == 0 {
		return errs.Errorf(errs.ENOTFOUND, "vm %s has no snapshot %s", host, want)
	}
	writeJSON(w, http.StatusOK, obj{{"ok", true}, {host, snaps[0]}})
	return nil
}

// handleDisk answers POST /vm/<host>/disk/<size> with 202.
func (s *server) handleDisk(w http.ResponseWriter, r *http.Request, c call) error {
	var size int
	parse := func() (err error) {
		if size, err = strconv.Atoi(c.ps.ByName("size")); err != nil {
			return errs.Errorf(errs.EINVALID, "Disk size must be a valid integer")
		}
		return nil
	}
	return s.vmChange(w, r, c, "disk", strict, http.StatusAccepted, parse, func(host string, caller pool.Caller) (obj, []any, error) {
		return obj{{"disk", fmt.Sprintf("+%dgb", size)}}, []any{"disk_gb", size}, s.svc.AddDisk(host, size, caller)
	})
}
