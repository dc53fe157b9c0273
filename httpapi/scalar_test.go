package httpapi

import (
	"testing"

	"github.com/vmpooler/vmpooler/internal/errs"
)

// TestParseCount reads counts as readJSON decodes them (numbers as
// json.Number, so 1.0 is not a whole number).
func TestParseCount(t *testing.T) {
	for _, c := range []struct {
		in   string // JSON
		want int
		code string
	}{
		{`"2"`, 2, ""}, {`3`, 3, ""}, {`" 4 "`, 4, ""}, {`"100"`, 100, ""}, {`1.0`, 0, errs.EINVALID},
		{`"0"`, 0, errs.EINVALID}, {`-1`, 0, errs.EINVALID}, {`101`, 0, errs.EINVALID},
		{`"x"`, 0, errs.EINVALID}, {`1.5`, 0, errs.EINVALID}, {`true`, 0, errs.EINVALID},
		{`null`, 0, errs.EINVALID}, {`"99999999999999999999"`, 0, errs.EINVALID},
	} {
		var v any
		if err := decodeJSON([]byte(`{"n":`+c.in+`}`), &v); err != nil {
			t.Fatal(err)
		}
		got, err := parseCount(v.(map[string]any)["n"])
		if got != c.want || errs.ErrorCode(err) != c.code {
			t.Errorf("parseCount(%s) = %d, %v; want %d, code %q", c.in, got, err, c.want, c.code)
		}
	}
}
