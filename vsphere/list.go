package vsphere

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// listProps are the VM properties List reads.
var listProps = []string{
	"name", "config.template", "runtime.powerState", "guest.ipAddress",
	"guest.hostName", "guest.toolsRunningStatus", "customValue",
	"guest.net", "runtime.connectionState",
} // and ownerPaths

// List returns every VM directly in <datacenter>/vm/<folder> (templates
// excepted) with one property-collector retrieve that walks the folder's
// children on the server: two round trips in all (find the folder,
// retrieve), whatever the number of VMs.
func (p *Provider) List(ctx context.Context, datacenter, folder string) ([]pool.VMInfo, error) {
	c, ctx, cancel, dc, err := p.beginIn(ctx, datacenter)
	defer cancel()
	if err != nil {
		return nil, err
	}
	full := dc + "/vm"
	if f := trimSlash(folder); f != "" {
		full += "/" + f
	}
	ref, err := p.findPath(ctx, c, "folder", full)
	if err != nil {
		return nil, err
	}
	if ref.Reference().Type != "Folder" {
		return nil, notFound("folder (not a "+ref.Reference().Type+")", full)
	}
	out, err := p.retrieveVMs(ctx, c, ref.Reference())
	if err != nil {
		return nil, wrapErr("list "+full, err)
	}
	for i := range out {
		out[i].Path = full + "/" + out[i].Name
	}
	return out, nil
}

// retrieveVMs reads listProps of the folder's VM children in one call
// (paged by the collector if vCenter pages).
func (p *Provider) retrieveVMs(ctx context.Context, c *vim25.Client, folder types.ManagedObjectReference) ([]pool.VMInfo, error) {
	var res *types.RetrievePropertiesResponse
	err := p.retrieveOwned(func(ownerPaths []string) (err error) {
		req := types.RetrieveProperties{SpecSet: []types.PropertyFilterSpec{{
			ObjectSet: []types.ObjectSpec{{
				Obj:  folder,
				Skip: types.NewBool(true),
				SelectSet: []types.BaseSelectionSpec{&types.TraversalSpec{
					Type: "Folder", Path: "childEntity", Skip: types.NewBool(false),
				}},
			}},
			PropSet: []types.PropertySpec{{Type: "VirtualMachine", PathSet: append(slices.Clip(listProps), ownerPaths...)}},
		}}}
		res, err = property.DefaultCollector(c).RetrieveProperties(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	var fieldsMissing bool
	out := make([]pool.VMInfo, 0, len(res.Returnval))
	for _, oc := range res.Returnval {
		vm, template, missing := p.decodeVM(oc)
		if template {
			continue
		}
		fieldsMissing = fieldsMissing || missing
		out = append(out, vm)
	}
	if fieldsMissing {
		// A custom field we have not seen: refresh the names once, decode again.
		if err := p.refreshFields(ctx, c); err != nil {
			return nil, err
		}
		out = out[:0]
		for _, oc := range res.Returnval {
			if vm, template, _ := p.decodeVM(oc); !template {
				out = append(out, vm)
			}
		}
	}
	return out, nil
}

// decodeVM turns one ObjectContent into a VMInfo; missing reports custom
// field keys whose names are unknown.
func (p *Provider) decodeVM(oc types.ObjectContent) (vm pool.VMInfo, template, missing bool) {
	var nics []types.GuestNicInfo
	connected := true
	for _, dp := range oc.PropSet {
		switch dp.Name {
		case "name":
			vm.Name, _ = dp.Val.(string)
		case "config.template":
			template, _ = dp.Val.(bool)
		case "runtime.powerState":
			ps, _ := dp.Val.(types.VirtualMachinePowerState)
			vm.PoweredOn = ps == types.VirtualMachinePowerStatePoweredOn
		case "guest.ipAddress":
			vm.IP, _ = dp.Val.(string)
		case "guest.hostName":
			vm.GuestHostname, _ = dp.Val.(string)
		case "guest.toolsRunningStatus":
			s, _ := dp.Val.(string)
			vm.ToolsRunning = s == string(types.VirtualMachineToolsRunningStatusGuestToolsRunning)
		case "customValue":
			arr, _ := dp.Val.(types.ArrayOfCustomFieldValue)
			vm.Attributes, missing = p.attributes(arr.CustomFieldValue)
		case "guest.net":
			arr, _ := dp.Val.(types.ArrayOfGuestNicInfo)
			nics = arr.GuestNicInfo
		case "runtime.connectionState":
			cs, _ := dp.Val.(types.VirtualMachineConnectionState)
			connected = cs == "" || cs == types.VirtualMachineConnectionStateConnected
		default:
			decodeMarker(&vm.Owner, dp.Name, dp.Val)
		}
	}
	if !connected {
		// Guest data of a VM on a disconnected host is what it was when
		// the host was lost: not a basis for a ready check.
		vm.Unknown, vm.IP, vm.ToolsRunning, vm.GuestHostname = true, "", false, ""
		return vm, template, missing
	}
	vm.IP = guestIP(vm.IP, nics, p.cfg.IPFamily == "ipv6")
	return vm, template, missing
}

// guestIP picks the address ready checks use: from the guest's virtual
// NICs (guest.net entries with a device; a docker0 or virbr0 bridge inside
// the guest has none, and its address can be the pooler host's own
// network), the first usable address of the preferred family, else of the
// other; without NIC data, guest.ipAddress when usable.
func guestIP(primary string, nics []types.GuestNicInfo, preferV6 bool) string {
	var v4, v6 string
	for _, nic := range nics {
		if nic.DeviceConfigId <= 0 {
			continue
		}
		for _, a := range nic.IpAddress {
			ip := net.ParseIP(a)
			if !usableIP(a) || ip.IsLoopback() {
				continue
			}
			if ip.To4() != nil {
				if v4 == "" {
					v4 = a
				}
			} else if v6 == "" {
				v6 = a
			}
		}
	}
	first, second := v4, v6
	if preferV6 {
		first, second = v6, v4
	}
	switch {
	case first != "":
		return first
	case second != "":
		return second
	case len(nics) == 0 && usableIP(primary):
		return primary
	}
	return ""
}

func (p *Provider) attributes(values []types.BaseCustomFieldValue) (map[string]string, bool) {
	if len(values) == 0 {
		return nil, false
	}
	out := make(map[string]string, len(values))
	missing := false
	p.fieldsMu.Lock()
	defer p.fieldsMu.Unlock()
	for _, v := range values {
		sv, ok := v.(*types.CustomFieldStringValue)
		if !ok {
			continue
		}
		name, ok := p.fields[sv.Key]
		if !ok {
			missing = true
			continue
		}
		out[name] = sv.Value
	}
	return out, missing
}

// refreshFields reloads the custom field definitions.
func (p *Provider) refreshFields(ctx context.Context, c *vim25.Client) error {
	m, err := object.GetCustomFieldsManager(c)
	if err != nil {
		return err
	}
	defs, err := m.Field(ctx)
	if err != nil {
		return err
	}
	p.fieldsMu.Lock()
	defer p.fieldsMu.Unlock()
	for _, d := range defs {
		p.fields[d.Key] = d.Name
	}
	return nil
}

// readyCheck is a parsed ready_check.
type readyCheck struct {
	kind string // "none", "tools", "tcp"
	port int
}

func parseCheck(s string) (readyCheck, error) {
	switch s {
	case "none", "tools":
		return readyCheck{kind: s}, nil
	case "ssh":
		return readyCheck{kind: "tcp", port: 22}, nil
	}
	if rest, ok := strings.CutPrefix(s, "tcp:"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n > 0 && n < 65536 {
			return readyCheck{kind: "tcp", port: n}, nil
		}
	}
	return readyCheck{}, fmt.Errorf("vsphere: ready_check %q: want none, tools, ssh or tcp:<port>", s)
}

// readyDialTimeout caps one TCP ready probe (upstream: 5 s).
const readyDialTimeout = 5 * time.Second

// Ready reports whether vm, as List returned it, passes check ("" = the
// provider's ready_check): "none" = powered on; "tools" = also VMware
// Tools running and a usable IP; "ssh" / "tcp:<port>" = also a TCP
// connect to the IP within the deadline. The reason says what is missing;
// err is for an invalid check, and ErrTransient for a VM whose host is
// disconnected (Unknown): the manager keeps such a VM as it is.
func (p *Provider) Ready(ctx context.Context, vm pool.VMInfo, check string) (bool, string, error) {
	if check == "" {
		check = p.cfg.ReadyCheck
	}
	rc, err := parseCheck(check)
	if err != nil {
		return false, "", err
	}
	if vm.Unknown {
		return false, "", fmt.Errorf("vsphere: %s: its host is disconnected or not responding: state unknown: %w", vm.Name, pool.ErrTransient)
	}
	if !vm.PoweredOn {
		return false, "powered off", nil
	}
	if rc.kind == "none" {
		return true, "", nil
	}
	if !vm.ToolsRunning {
		return false, "VMware Tools not running", nil
	}
	if !usableIP(vm.IP) {
		return false, "no IP address yet", nil
	}
	if rc.kind == "tools" {
		return true, "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, readyDialTimeout)
	defer cancel()
	addr := net.JoinHostPort(vm.IP, strconv.Itoa(rc.port))
	conn, err := p.Dial(ctx, "tcp", addr)
	if err != nil {
		return false, "tcp " + addr + ": " + err.Error(), nil
	}
	_ = conn.Close()
	return true, "", nil
}

// usableIP rejects empty, unspecified and link-local addresses, which
// guests report before DHCP (upstream skips 0.x and 169.254.x).
func usableIP(s string) bool {
	ip := net.ParseIP(s)
	if ip == nil || ip.IsUnspecified() || ip.IsLinkLocalUnicast() {
		return false
	}
	ip4 := ip.To4()
	return ip4 == nil || ip4[0] != 0
}

func defaultDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}
