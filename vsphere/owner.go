package vsphere

import (
	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// The ownership marker: two extraConfig keys every clone gets in its clone
// spec, so the marker exists from the moment the VM does and survives
// renames, moves and a lost database. guestinfo.* keys are also readable
// by the guest (vmware-rpctool "info-get guestinfo.vmpooler.pool"), which
// is harmless: neither is a secret.
const (
	markerInstance = "guestinfo.vmpooler.instance"
	markerPool     = "guestinfo.vmpooler.pool"
)

// Property paths that read one extraConfig entry each (the collector
// indexes keyed arrays), instead of the whole extraConfig of every VM.
var (
	propMarkerInstance = `config.extraConfig["` + markerInstance + `"]`
	propMarkerPool     = `config.extraConfig["` + markerPool + `"]`
)

// ownerPaths are the property paths that read the marker: one
// extraConfig entry each (the collector indexes keyed arrays) rather than
// the whole extraConfig of every VM; after a vCenter refused the indexed
// paths (InvalidProperty), the whole extraConfig.
func (p *Provider) ownerPaths() []string {
	if p.wholeExtraConfig.Load() {
		return []string{"config.extraConfig"}
	}
	return []string{propMarkerInstance, propMarkerPool}
}

// retrieveOwned runs retrieve with the marker paths, falling back for good
// to the whole extraConfig when vCenter refuses the indexed ones.
func (p *Provider) retrieveOwned(retrieve func(ownerPaths []string) error) error {
	err := retrieve(p.ownerPaths())
	if err != nil && !p.wholeExtraConfig.Load() && fault.Is(err, &types.InvalidProperty{}) {
		p.wholeExtraConfig.Store(true)
		p.logger.Warn("vCenter refused indexed extraConfig properties; reading each VM's whole extraConfig for ownership markers", "err", err)
		err = retrieve(p.ownerPaths())
	}
	return err
}

// markerOptions returns the extraConfig entries that mark a clone.
func markerOptions(instance, poolName string) []types.BaseOptionValue {
	if instance == "" {
		return nil
	}
	return []types.BaseOptionValue{
		&types.OptionValue{Key: markerInstance, Value: instance},
		&types.OptionValue{Key: markerPool, Value: poolName},
	}
}

// decodeMarker sets the field of o that the property name holds.
func decodeMarker(o *pool.Owner, name string, val any) bool {
	var dst *string
	switch name {
	case propMarkerInstance:
		dst = &o.Instance
	case propMarkerPool:
		dst = &o.Pool
	case "config.extraConfig":
		arr, _ := val.(types.ArrayOfOptionValue)
		for _, ov := range arr.OptionValue {
			if v := ov.GetOptionValue(); v.Key == markerInstance || v.Key == markerPool {
				decodeMarker(o, `config.extraConfig["`+v.Key+`"]`, v)
			}
		}
		return true
	default:
		return false
	}
	switch v := val.(type) {
	case types.OptionValue:
		*dst, _ = v.Value.(string)
	case *types.OptionValue:
		*dst, _ = v.Value.(string)
	}
	return true
}
