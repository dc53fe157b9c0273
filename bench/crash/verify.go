package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// verdict is one verification's outcome.
type verdict struct {
	name   string
	ok     bool
	detail string
}

// report collects verdicts and notes in order.
type report struct{ items []verdict }

func (r *report) add(name string, ok bool, format string, args ...any) {
	r.items = append(r.items, verdict{name: name, ok: ok, detail: fmt.Sprintf(format, args...)})
}

func (r *report) failures() int {
	n := 0
	for _, v := range r.items {
		if !v.ok {
			n++
		}
	}
	return n
}

func (r *report) write(w io.Writer) {
	for _, v := range r.items {
		mark := "PASS"
		if !v.ok {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, v.name, v.detail)
	}
	if n := r.failures(); n > 0 {
		fmt.Fprintf(w, "RESULT: FAIL (%d of %d verifications failed)\n", n, len(r.items))
	} else {
		fmt.Fprintf(w, "RESULT: PASS (%d verifications)\n", len(r.items))
	}
}

// lines splits command output into a set of non-empty trimmed lines.
func lines(s string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out[l] = true
		}
	}
	return out
}

// minus returns the sorted members of a that are not in b.
func minus(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// converged reports whether every configured pool has ready+pending equal to
// its size, and describes each pool's figures.
func converged(pools []PoolSize, st map[string]PoolStatus) (bool, string) {
	ok := true
	var parts []string
	for _, p := range pools {
		s, found := st[p.Name]
		if !found {
			ok = false
			parts = append(parts, p.Name+" missing from /status")
			continue
		}
		good := s.Ready+s.Pending == p.Size
		if !good {
			ok = false
		}
		parts = append(parts, fmt.Sprintf("%s ready %d + pending %d = %d (size %d, running %d)%s",
			p.Name, s.Ready, s.Pending, s.Ready+s.Pending, p.Size, s.Running, map[bool]string{true: "", false: " WRONG"}[good]))
	}
	return ok, strings.Join(parts, "; ")
}

// full reports whether every pool has all its VMs ready.
func full(pools []PoolSize, st map[string]PoolStatus) bool {
	for _, p := range pools {
		if s, ok := st[p.Name]; !ok || s.Ready != p.Size || s.Pending != 0 {
			return false
		}
	}
	return true
}

// clip shortens a list for printing.
func clip(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, " ")
	}
	return strings.Join(s[:n], " ") + fmt.Sprintf(" … (%d more)", len(s)-n)
}

// bracket prints " [a b …]" for a non-empty list, nothing for an empty one.
func bracket(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return " [" + clip(s, 20) + "]"
}
