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
	c, ctx, cancel, err := p.begin(ctx)
	defer cancel()
	if err != nil {
		return false, err
	}
	dc, err := p.datacenter(datacenter)
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
