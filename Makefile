# rt — build, sample bundles, tests and benchmarks. See README.md.
SHELL := /bin/bash
CARGO ?= cargo
RT := target/release/rt
BUSYBOX ?= /bin/busybox

.PHONY: all build rootfs
all: build rootfs

build:
	$(CARGO) build --release

# The busybox bundle's rootfs is built from Debian's busybox-static: no binaries are committed.
rootfs: bundles/busybox/rootfs/bin/busybox

bundles/busybox/rootfs/bin/busybox: $(BUSYBOX)
	rm -rf bundles/busybox/rootfs.tmp
	mkdir -p bundles/busybox/rootfs.tmp/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,root,run,var}
	cp $(BUSYBOX) bundles/busybox/rootfs.tmp/bin/busybox
	for app in $$(bundles/busybox/rootfs.tmp/bin/busybox --list-full); do \
		[ "$$app" = bin/busybox ] || ln -sf /bin/busybox bundles/busybox/rootfs.tmp/$$app; done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > bundles/busybox/rootfs.tmp/etc/passwd
	printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > bundles/busybox/rootfs.tmp/etc/group
	rm -rf bundles/busybox/rootfs && mv bundles/busybox/rootfs.tmp bundles/busybox/rootfs
