package pool

import (
	"strings"
	"testing"
)

// randomString draws every character of its alphabets equally often (the
// snapshot names once used b%36 on a byte, which favours the first 4
// characters by 8/7).
func TestRandomStringUniform(t *testing.T) {
	const first = "abcdefghijklmnopqrstuvwxy"
	counts := map[byte]int{}
	firsts := map[byte]int{}
	const n = 20000
	for range n {
		s := randomString(first, hostnameAlphabet, 10)
		if len(s) != 10 || !strings.ContainsRune(first, rune(s[0])) {
			t.Fatalf("randomString = %q", s)
		}
		firsts[s[0]]++
		for i := 1; i < len(s); i++ {
			counts[s[i]]++
		}
	}
	want := float64(n*9) / float64(len(hostnameAlphabet)) // 5000 each
	for i := range len(hostnameAlphabet) {
		c := hostnameAlphabet[i]
		if got := float64(counts[c]); got < 0.9*want || got > 1.1*want {
			t.Errorf("%q drawn %v times, want about %v", c, got, want)
		}
	}
	if len(firsts) != len(first) {
		t.Errorf("first characters seen: %d of %d", len(firsts), len(first))
	}
}
