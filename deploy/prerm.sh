#!/bin/sh
# prerm of the vmpooler .deb: on removal stop and disable the service. The
# database in /var/lib/vmpooler and the user are kept (remove them by hand).
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl disable --now vmpooler.service || true
fi
exit 0
