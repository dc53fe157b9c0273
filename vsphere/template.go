package vsphere

import (
	"context"
	"errors"

	"github.com/vmpooler/vmpooler/pool"
)

var _ pool.TemplateFinder = (*Provider)(nil)

// TemplateExists implements pool.TemplateFinder: whether a virtual machine
// (template or not) exists at <datacenter>/vm/<path>.
func (p *Provider) TemplateExists(ctx context.Context, datacenter, path string) (bool, error) {
	c, ctx, cancel, dc, err := p.beginIn(ctx, datacenter)
	defer cancel()
	if err != nil {
		return false, err
	}
	ref, err := findPath(ctx, c, "template", dc+"/vm/"+trimSlash(path))
	if errors.Is(err, pool.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return ref.Reference().Type == "VirtualMachine", nil
}
