package tomlx

import (
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestStringList(t *testing.T) {
	for _, tc := range []struct {
		text string
		want StringList
		err  string // part of the error, "" for none
	}{
		{`l = "a"`, StringList{"a"}, ""},
		{`l = ["a", "b"]`, StringList{"a", "b"}, ""},
		{`l = []`, StringList{}, ""},
		{`l = 3`, nil, "got int64"},
		{`l = ["a", 3]`, nil, "a list holding int64"},
	} {
		var v struct {
			L StringList `toml:"l"`
		}
		_, err := toml.Decode(tc.text, &v)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one saying %q", tc.text, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(v.L, tc.want) {
			t.Errorf("%s: got %q, %v; want %q", tc.text, v.L, err, tc.want)
		}
	}
}
