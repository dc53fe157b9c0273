// Package tomlx holds the TOML value types the configuration of several
// packages shares.
package tomlx

import "fmt"

// StringList is a TOML string or array of strings: upstream's configuration
// accepts either where a list is meant (a pool's alias, LDAP's base and
// user_object). A single string is a list of one.
type StringList []string

// UnmarshalTOML accepts a string or an array of strings.
func (l *StringList) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*l = StringList{v}
	case []any:
		out := make(StringList, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("want a string or a list of strings, got a list holding %T", e)
			}
			out = append(out, s)
		}
		*l = out
	default:
		return fmt.Errorf("want a string or a list of strings, got %T", v)
	}
	return nil
}
