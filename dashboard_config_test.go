package main

import "testing"

// dashboard_public defaults to true, is read from [config], and a reload
// that changes it is refused for that key (it needs a restart).
func TestDashboardPublicConfig(t *testing.T) {
	def, err := ParseConfig("x", minimal, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !def.Global.dashboardPublic() {
		t.Error("dashboard_public defaults to false, want true")
	}
	off, err := ParseConfig("x", "[config]\ndashboard_public = false\n"+minimal, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if off.Global.dashboardPublic() {
		t.Fatal("dashboard_public = false parsed as true")
	}
	got := keepRestartOnly(def, off)
	if len(got) != 1 || got[0].key != "[config] dashboard_public" || got[0].running != "true" || got[0].inFile != "false" {
		t.Errorf("keepRestartOnly = %+v, want one [config] dashboard_public true -> false", got)
	}
	if !off.Global.dashboardPublic() {
		t.Error("the reload kept the file's dashboard_public, not the running one")
	}
}
