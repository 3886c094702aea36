#!/usr/bin/env bash
# umoci unpacks an OCI image into a bundle; rt runs it through its whole lifecycle.
E2E_NAME=umoci
source "$(dirname "$0")/lib.sh"

ROOT="$WORK/state"
ID="e2e-umoci-$$"
IMG="$WORK/layout"
BUNDLE="$WORK/bundle"
on_exit "'$RT' --root '$ROOT' delete -f $ID"

build_image() {
    umoci init --layout "$IMG" &&
        umoci new --image "$IMG:base" &&
        umoci insert --image "$IMG:base" "$E2E_TOP/bundles/busybox/rootfs" / &&
        umoci config --image "$IMG:base" --config.cmd sh --config.cmd -c \
            --config.cmd 'echo ready > /tmp/ready; exec sleep 1000' \
            --config.env E2E=umoci --config.workingdir /tmp
}
step "build an OCI image with umoci (init, new, insert, config)" build_image
step "umoci unpack into a bundle" umoci unpack --image "$IMG:base" "$BUNDLE"
# umoci asks for a terminal; this script has none to give.
step "bundle without a terminal" python3 -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c['process']['terminal']=False; json.dump(c,open(p,'w'))" "$BUNDLE/config.json"
step "rt create" "$RT" --root "$ROOT" create -b "$BUNDLE" "$ID"
step "rt state says created" bash -c "'$RT' --root '$ROOT' state $ID | grep -q '\"status\": \"created\"'"
step "rt start" "$RT" --root "$ROOT" start "$ID"
step "rt state says running" bash -c "'$RT' --root '$ROOT' state $ID | grep -q '\"status\": \"running\"'"
step "rt exec sees umoci's env and cwd" expect_eq "umoci /tmp" retry 20 "$RT" --root "$ROOT" exec "$ID" sh -c 'cat /tmp/ready >/dev/null && echo $E2E $PWD'
step "rt ps lists the entrypoint" bash -c "'$RT' --root '$ROOT' ps $ID | grep -q sleep"
step "rt ps --format json" bash -c "'$RT' --root '$ROOT' ps --format json $ID | grep -Eq '^\[[0-9]+(,[0-9]+)*\]$'"
step "rt kill KILL stops it" bash -c "'$RT' --root '$ROOT' kill $ID KILL && for i in \$(seq 50); do '$RT' --root '$ROOT' state $ID | grep -q stopped && exit 0; sleep 0.1; done; exit 1"
step "rt delete" "$RT" --root "$ROOT" delete "$ID"
step "state is gone after delete" expect_rc 1 "$RT" --root "$ROOT" state "$ID"
step "rt's call log has create, start, exec, kill and delete" bash -c "for c in create start exec kill delete; do grep -q \" \$c \" '$RT_LOG' || exit 1; done"
step "nothing left behind" no_leftovers
finish
