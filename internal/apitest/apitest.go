// Package apitest calls a running pooler's REST API the way a client
// does, for the end-to-end tests of every package.
//
// It imports nothing of the pooler's, so that any package's tests can use it.
package apitest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Call sends method to url with body ("" for none) and returns the status
// and the JSON object answered; a transport error or an answer that is not
// a JSON object fails tb.
func Call(tb testing.TB, method, url, body string) (int, map[string]any) {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		tb.Fatalf("%s %s: %d, not a JSON object: %v", method, url, res.StatusCode, err)
	}
	return res.StatusCode, out
}
