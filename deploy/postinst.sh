#!/bin/sh
# postinst of the vmpooler .deb: the service user, the state directory's
# owner, the configuration readable by the service only, systemd told.
set -e
if ! getent passwd vmpooler >/dev/null; then
	useradd --system --user-group --home-dir /var/lib/vmpooler --no-create-home \
		--shell /usr/sbin/nologin --comment "vmpooler service" vmpooler
fi
chown vmpooler:vmpooler /var/lib/vmpooler
chmod 0750 /var/lib/vmpooler
# It may hold the vCenter password: root writes it, the service reads it.
chown root:vmpooler /etc/vmpooler/vmpooler.toml
chmod 0640 /etc/vmpooler/vmpooler.toml
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	# An upgrade restarts a running service; a first install leaves
	# starting it to `systemctl enable --now vmpooler`.
	systemctl try-restart vmpooler.service || true
fi
exit 0
