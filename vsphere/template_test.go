package vsphere

import "testing"

func TestTemplateExists(t *testing.T) {
	pools := testPools()
	pc := pools[0]
	p := MustOpenSim(t, pools)
	ctx := ctxT(t)
	for _, c := range []struct {
		path string
		want bool
	}{{pc.Template, true}, {"templates/nope", false}, {"nofolder/x", false}} {
		got, err := p.TemplateExists(ctx, pc.Datacenter, c.path)
		if err != nil || got != c.want {
			t.Errorf("TemplateExists(%q) = %v, %v; want %v", c.path, got, err, c.want)
		}
	}
}
