package auth

import "fmt"

// SetFile switches the htpasswd provider to another file (a reload whose
// [auth] file changed). The new file must load; otherwise the error names
// it and the users of the old file stay in force. (A change of the same
// file needs no call: it is reloaded when its mtime or size changes.)
func (a *Auth) SetFile(path string) error {
	if a.provider != ProviderHtpasswd {
		return fmt.Errorf("auth: provider %q has no file", a.provider)
	}
	h, err := openHtpasswd(path, a.logger)
	if err != nil {
		return err
	}
	a.htpasswd.Store(h)
	a.logger.Info("auth: htpasswd file switched", "file", path, "users", h.count())
	return nil
}
