package main

import (
	"strings"
)

// upstreamIgnored are keys of upstream vmpooler's vmpooler.yaml that have
// no meaning here: a file carried over with them starts, with a warning
// naming each, instead of being refused as unknown. Key paths as the TOML
// decoder reports them; a trailing "*" matches a prefix.
var upstreamIgnored = map[string]string{
	"config.logfile":                                      "logs go to standard error (journald under systemd)",
	"config.migration_limit":                              "VMs are not migrated at checkout",
	"config.manage_host_selection":                        "placement is clone_target's (vCenter or DRS picks the host in a cluster)",
	"config.host_selection_max_age":                       "placement is clone_target's",
	"config.utilization_limit":                            "placement is clone_target's",
	"config.timeout_notification":                         "the timeout itself is logged",
	"config.max_vm_retries":                               "ondemand clones are retried until the request's TTL",
	"config.backend_weight":                               "aliases shared by pools are served in config order",
	"config.usage_stats":                                  "see /summary and /metrics",
	"config.request_logger":                               "see /metrics and the audit log",
	"config.rate_limiting_enabled":                        "no rate limiter",
	"config.max_tries":                                    "vCenter connections are retried with backoff",
	"config.retry_factor":                                 "vCenter connections are retried with backoff",
	"config.create_template_delta_disks":                  "take a snapshot of the template for linked clones",
	"config.resources_allowlist":                          "purge_unconfigured_resources destroys only this pooler's own VMs",
	"config.folder_whitelist":                             "purge_unconfigured_resources destroys only this pooler's own VMs",
	"config.check_loop_delay_min":                         "check_loop_delay",
	"config.check_loop_delay_max":                         "check_loop_delay",
	"config.check_loop_delay_decay":                       "check_loop_delay",
	"config.extra_config":                                 "one TOML file",
	"config.circuit_breaker_*":                            "vCenter calls back off per pool",
	"config.adaptive_timeout_*":                           "vsphere_timeout bounds each call",
	"config.connection_pool_*":                            "one vCenter session, no connection pool",
	"config.purge_*":                                      "destroyed records are purged after data_ttl",
	"config.dlq_*":                                        "no dead-letter queue",
	"config.health_check*":                                "see /healthcheck and /status",
	"pools.dns_plugin":                                    "hostnames take the pool's domain",
	"pools.timeout_notification":                          "the timeout itself is logged",
	"pools.check_loop_delay_min":                          "check_loop_delay",
	"pools.check_loop_delay_max":                          "check_loop_delay",
	"pools.check_loop_delay_decay":                        "check_loop_delay",
	"providers.vsphere.provider_class":                    "the provider is vsphere",
	"providers.vsphere.connection_pool_*":                 "one vCenter session, no connection pool",
	"providers.vsphere.purge_unconfigured_resources":      "set [config] purge_unconfigured_resources",
	"providers.vsphere.resources_allowlist":               "purge_unconfigured_resources destroys only this pooler's own VMs",
	"providers.vsphere.folder_whitelist":                  "purge_unconfigured_resources destroys only this pooler's own VMs",
	"providers.vsphere.skip_dns_check_before_creating_vm": "no DNS check",
}

// ignoredUpstreamKey returns why an undecoded key is one of upstream's
// that this pooler ignores, or "" for a key nobody knows.
func ignoredUpstreamKey(key string) string {
	for k, why := range upstreamIgnored {
		if prefix, ok := strings.CutSuffix(k, "*"); ok && strings.HasPrefix(key, prefix) {
			return why
		}
		if key == k || strings.HasPrefix(key, k+".") { // a table's keys too
			return why
		}
	}
	return ""
}

// applyUpstreamVsphereKeys applies the vSphere keys upstream keeps under
// :config: (create_folders, create_linked_clones) to [providers.vsphere]
// when that section does not set them itself.
func (c *Config) applyUpstreamVsphereKeys() {
	v := &c.Providers.Vsphere
	if g := c.Global.CreateFolders; g != nil && *g {
		v.CreateFolders = true
	}
	if g := c.Global.CreateLinkedClones; g != nil && v.CreateLinkedClones == nil {
		b := *g
		v.CreateLinkedClones = &b
	}
}
