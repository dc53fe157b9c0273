#!/usr/bin/env bash
# Replays every curl example of the user's API document (spec/api-v1.txt)
# against a pooler started with testdata/api-v1.toml:
#
#   go run . -config testdata/api-v1.toml &     # from the repository root
#   bash testdata/api-v1.sh
#
# Names and times differ from the document; shapes and statuses must not.
set -u
H=${VMPOOLER_URL:-127.0.0.1:4567}
run() { echo "\$ $*"; "$@"; echo; echo; }
host_of() { python3 -c 'import json,sys; d=json.load(sys.stdin); v=d[sys.argv[1]]["hostname"]; print(v if isinstance(v,str) else v[0])' "$1"; }

echo "# Token operations"
run curl -s -u jdoe:secret -X POST --url $H/api/v1/token
TOKEN=$(curl -s -u jdoe:secret -X POST --url $H/api/v1/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
run curl -s -u jdoe:secret --url $H/api/v1/token
run curl -s -u jdoe:secret --url $H/api/v1/token/$TOKEN

echo "# VM operations"
run curl -s --url $H/api/v1/vm
run curl -s -d '{"debian-7-i386":"2","debian-7-x86_64":"1"}' --url $H/api/v1/vm
run curl -s -d --url $H/api/v1/vm/debian-7-i386   # as the document writes it: the body is "--url"
run curl -s -d --url $H/api/v1/vm/debian-7-i386+debian-7-i386+debian-7-x86_64
VM=$(curl -s -X POST -H "X-AUTH-TOKEN: $TOKEN" --url $H/api/v1/vm/debian-7-i386 | host_of debian-7-i386)
run curl -s -X PUT -H "X-AUTH-TOKEN: $TOKEN" -d '{"lifetime":"2"}' --url $H/api/v1/vm/$VM
run curl -s -X PUT -d '{"tags":{"department":"engineering","user":"jdoe"}}' --url $H/api/v1/vm/$VM
run curl -s --url $H/api/v1/vm/$VM

echo "# VM snapshots"
echo "\$ curl -s -X POST -H X-AUTH-TOKEN:$TOKEN --url $H/api/v1/vm/$VM/snapshot"
OUT=$(curl -s -X POST -H "X-AUTH-TOKEN: $TOKEN" --url $H/api/v1/vm/$VM/snapshot)
echo "$OUT"; echo; echo
SNAP=$(echo "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]]["snapshot"])' "$VM")
for _ in $(seq 1 50); do curl -s --url $H/api/v1/vm/$VM | grep -q "$SNAP" && break; sleep 0.1; done
run curl -s --url $H/api/v1/vm/$VM
run curl -s X POST -H "X-AUTH-TOKEN: $TOKEN" --url $H/api/v1/vm/$VM/snapshot/$SNAP   # the document's typo: a GET, harmless
run curl -s -X POST -H "X-AUTH-TOKEN: $TOKEN" --url $H/api/v1/vm/$VM/snapshot/$SNAP
run curl -s -X DELETE -H "X-AUTH-TOKEN: $TOKEN" --url $H/api/v1/vm/$VM

echo "# Status and metrics"
run curl -s --url $H/api/v1/status
run curl -s --url $H/api/v1/summary
run curl -s -G -d "from=$(date -u -d yesterday +%F)" -d "to=$(date -u +%F)" --url $H/api/v1/summary

echo "# Token delete"
run curl -s -X DELETE -u jdoe:secret --url $H/api/v1/token/$TOKEN
