package vsphere

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/vmware/govmomi/vim25/soap"
)

// trust configures how sc verifies vCenter's certificate: the system's
// roots, plus ca_file's PEM bundle, or the pinned thumbprint; insecure
// skips verification (and says so at start).
func (p *Provider) trust(sc *soap.Client, u *url.URL) error {
	if p.cfg.CAFile != "" {
		if err := sc.SetRootCAs(p.cfg.CAFile); err != nil {
			return fmt.Errorf("[providers.vsphere] ca_file %s: %w", p.cfg.CAFile, err)
		}
	}
	if p.cfg.Thumbprint != "" {
		sc.SetThumbprint(u.Host, p.cfg.Thumbprint)
	}
	if p.cfg.Insecure && !p.cfg.Simulator {
		p.logger.Warn("insecure = true: vCenter's certificate is not verified; anyone on the path can read the service account's password",
			"fix", "set [providers.vsphere] ca_file (the VMCA root, https://<vcenter>/certs/download.zip) or thumbprint, and remove insecure")
	}
	return nil
}

// untrustedError explains a certificate vCenter presented that is not
// trusted: its subject, issuer and fingerprints, and the two keys that
// make the pooler trust it.
func untrustedError(ctx context.Context, u *url.URL, err error) error {
	var about string
	if cert := peerCertificate(ctx, u.Host); cert != "" {
		about = " (" + cert + ")"
	}
	return fmt.Errorf("vsphere: vCenter %s presented a certificate that is not trusted%s: set [providers.vsphere] ca_file to a PEM file of the CA that signed it (for a VMCA-signed vCenter, the root in https://%s/certs/download.zip) or thumbprint to its SHA-256 fingerprint; insecure = true skips the check: %w",
		u.Host, about, u.Hostname(), err)
}

// peerCertificate describes the leaf certificate at addr, read without
// verification, for the error message only.
func peerCertificate(ctx context.Context, addr string) string {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "443")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} // #nosec G402 -- only to describe the certificate
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return ""
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return ""
	}
	c := certs[0]
	return strings.Join([]string{
		"subject " + c.Subject.String(),
		"issuer " + c.Issuer.String(),
		"SHA-256 " + soap.ThumbprintSHA256(c),
		"SHA-1 " + soap.ThumbprintSHA1(c),
	}, ", ")
}
