package httpapi

import (
	"testing"

	"github.com/vmpooler/vmpooler/store"
)

// TestParseCount reads counts as readJSON decodes them (numbers as
// json.Number, so 1.0 is not a whole number).
func TestParseCount(t *testing.T) {
	for _, c := range []struct {
		in   string // JSON
		want int
		code string
	}{
		{`"2"`, 2, ""}, {`3`, 3, ""}, {`" 4 "`, 4, ""}, {`"100"`, 100, ""}, {`1.0`, 0, store.EINVALID},
		{`"0"`, 0, store.EINVALID}, {`-1`, 0, store.EINVALID}, {`101`, 0, store.EINVALID},
		{`"x"`, 0, store.EINVALID}, {`1.5`, 0, store.EINVALID}, {`true`, 0, store.EINVALID},
		{`null`, 0, store.EINVALID}, {`"99999999999999999999"`, 0, store.EINVALID},
	} {
		var v any
		if err := decodeJSON([]byte(`{"n":`+c.in+`}`), &v); err != nil {
			t.Fatal(err)
		}
		got, err := parseCount(v.(map[string]any)["n"])
		if got != c.want || store.ErrorCode(err) != c.code {
			t.Errorf("parseCount(%s) = %d, %v; want %d, code %q", c.in, got, err, c.want, c.code)
		}
	}
}
