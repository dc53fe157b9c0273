package pool

import (
	"context"
	"errors"
)

var _ TemplateFinder = (*FakeProvider)(nil)

// TemplateExists implements TemplateFinder: every template exists unless
// SetCloneError's function refuses a clone of it with ErrNotFound.
func (f *FakeProvider) TemplateExists(ctx context.Context, datacenter, path string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return false, f.down
	}
	if f.cloneErr != nil {
		if err := f.cloneErr(CloneSpec{Template: path, Datacenter: datacenter}); errors.Is(err, ErrNotFound) {
			return false, nil
		}
	}
	return true, nil
}
