# rt — build, sample bundles, tests and benchmarks. See README.md.
SHELL := /bin/bash
# Only one cargo at a time on this machine: every cargo call takes this lock.
CARGO ?= flock /tmp/rt-cargo.lock cargo
# rt is built for musl (static; no glibc start-up work, see README, Benchmark), the target in
# .cargo/config.toml, which `make deps` adds with rustup. Where rustup cannot add it, for glibc
# (static too): CARGO_BUILD_TARGET overrides the config for every cargo call made from here.
MUSL_TARGET := x86_64-unknown-linux-musl
RUST_TARGET = $(shell d=$$(rustc --print target-libdir --target $(MUSL_TARGET) 2>/dev/null) && [ -d "$$d" ] \
	&& echo $(MUSL_TARGET) || echo x86_64-unknown-linux-gnu)
export CARGO_BUILD_TARGET = $(RUST_TARGET)
RT = target/$(RUST_TARGET)/release/rt
BUSYBOX ?= /bin/busybox
# Extra arguments for bench/bench.py, e.g. make bench BENCH_ARGS="--runtimes runc,crun --iterations 5"
# or BENCH_ARGS="--scenarios run,exec" (scenarios: run lifecycle exec parallel cycles, default all).
BENCH_ARGS ?=

# Debian 12 packages the project needs, and the ones only the benchmark needs.
DEB_PACKAGES := busybox-static gcc libc6-dev libseccomp-dev pkg-config make python3 curl uidmap
BENCH_PACKAGES := runc crun
# Only the VM tests need these (one VM boots the host's systemd and D-Bus as PID 1 and bus).
# criu: tests/checkpoint.rs runs it in the VM.
VM_PACKAGES := qemu-system-x86 cpio systemd dbus dbus-user-session criu
# The tools that drive rt in make e2e.
E2E_PACKAGES := podman buildah containerd docker.io skopeo umoci slirp4netns conmon uidmap iptables iproute2 procps util-linux
E2E_TOOLS ?= umoci podman buildah containerd docker
E2E_VM_TOOLS ?= podman podman-rootless buildah containerd docker
E2E_CGROUP_MANAGER ?= cgroupfs

# $(call apt_install,PACKAGES): install those not installed yet; apt-get update only if any is missing.
define apt_install
missing=""; \
for p in $(1); do dpkg -s $$p 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
	echo "installing:$$missing"; \
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
else echo "already installed: $(1)"; \
fi
endef

.PHONY: all deps bench-deps e2e-deps build rootfs demo web test test-vm e2e e2e-run e2e-vm lint bench bench-vm fuzz hot-text
all: build rootfs

deps:
	@$(call apt_install,$(DEB_PACKAGES))
	@command -v cargo >/dev/null || { echo "error: cargo not found: install Rust with rustup, or add ~/.cargo/bin to PATH" >&2; exit 1; }
	@if rustup target list --installed 2>/dev/null | grep -qx $(MUSL_TARGET); then :; \
	elif command -v rustup >/dev/null && rustup target add $(MUSL_TARGET); then :; \
	else echo "warning: no Rust $(MUSL_TARGET) target (rustup could not add it): rt is built for glibc" >&2; fi

bench-deps: deps
	@$(call apt_install,$(BENCH_PACKAGES))

# The packages must not start their daemons on the host (dockerd would add iptables rules):
# a policy-rc.d that refuses every start, for the install only (removed on any exit), unless
# the machine has one. Docker CE's packages conflict with Debian's docker.io and containerd:
# where they are installed, they are used as they are, never replaced.
e2e-deps: deps
	@pkgs="$(E2E_PACKAGES)"; \
	if dpkg -s docker-ce >/dev/null 2>&1 || dpkg -s containerd.io >/dev/null 2>&1; then \
		echo "Docker CE is installed: using it instead of Debian's docker.io and containerd"; \
		pkgs=$$(echo " $$pkgs " | sed 's/ docker.io / /; s/ containerd / /'); fi; \
	if [ -e /usr/sbin/policy-rc.d ]; then $(call apt_install,$$pkgs); \
	else trap 'rm -f /usr/sbin/policy-rc.d' EXIT INT TERM; \
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d; \
		$(call apt_install,$$pkgs); fi

build:
	$(CARGO) build --release

# The busybox bundle's rootfs is built from Debian's busybox-static: no binaries are committed.
rootfs: bundles/busybox/rootfs/bin/busybox bundles/hello-web/rootfs/home/tiny

bundles/busybox/rootfs/bin/busybox: $(BUSYBOX)
	rm -rf bundles/busybox/rootfs.tmp
	mkdir -p bundles/busybox/rootfs.tmp/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,root,run,var}
	cp $(BUSYBOX) bundles/busybox/rootfs.tmp/bin/busybox
	for app in $$(bundles/busybox/rootfs.tmp/bin/busybox --list-full); do \
		[ "$$app" = bin/busybox ] || ln -sf /bin/busybox bundles/busybox/rootfs.tmp/$$app; done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > bundles/busybox/rootfs.tmp/etc/passwd
	printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > bundles/busybox/rootfs.tmp/etc/group
	rm -rf bundles/busybox/rootfs && mv bundles/busybox/rootfs.tmp bundles/busybox/rootfs

# The seed article's web server: a static C binary and its index.html, nothing else.
bundles/hello-web/rootfs/home/tiny: bundles/hello-web/tiny.c
	rm -rf bundles/hello-web/rootfs.tmp
	mkdir -p bundles/hello-web/rootfs.tmp/{home,proc,dev,tmp}
	gcc -static -O2 -Wall -Wextra -o bundles/hello-web/rootfs.tmp/home/tiny bundles/hello-web/tiny.c
	echo 'Hello World' > bundles/hello-web/rootfs.tmp/home/index.html
	rm -rf bundles/hello-web/rootfs && mv bundles/hello-web/rootfs.tmp bundles/hello-web/rootfs

# The end-to-end story: run the web server detached, ask it for index.html, clean up.
web: deps build rootfs
	@root=$$(mktemp -d /tmp/rt-web.XXXXXX); \
	trap '$(RT) --root "$$root" delete -f web >/dev/null 2>&1; rm -rf "$$root"' EXIT; \
	echo "+ $(RT) --root $$root run -d -b bundles/hello-web web"; \
	$(RT) --root "$$root" run -d -b bundles/hello-web web; \
	for i in $$(seq 50); do curl -fsS http://127.0.0.1:8082/index.html 2>/dev/null && break; sleep 0.1; done; \
	echo "+ curl http://127.0.0.1:8082/index.html -> $$(curl -fsS http://127.0.0.1:8082/index.html)"

# Runs the sample bundle under its own state dir in /tmp, removed afterwards.
demo: deps build rootfs
	@root=$$(mktemp -d /tmp/rt-demo.XXXXXX); id=demo-$$$$; \
	trap '$(RT) --root "$$root" delete -f $$id >/dev/null 2>&1; rm -rf "$$root"' EXIT; \
	echo "+ $(RT) --root $$root run -b bundles/busybox $$id"; \
	$(RT) --root "$$root" run -b bundles/busybox $$id

# Every test (as root), the resource limits in a cgroup v2 VM, the lint, a bounded fuzzing run.
test: deps rootfs
	$(CARGO) test
	@$(MAKE) --no-print-directory test-vm
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory e2e-vm
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory fuzz

# The tests that need a pure cgroup v2 kernel run in VMs (vm/run.sh): tests/cgroup_v2.rs's
# ignored ones on a plain init (a v2 host without systemd) with tests/checkpoint.rs's (CRIU
# works on the VM's kernel, not on the build machines'), then, in a VM that boots systemd as
# PID 1 like users' hosts: tests/cgroup_v2.rs under both cgroup drivers (cgroupfs, then every
# rt call with --systemd-cgroup) and tests/systemd_cgroup.rs.
test-vm: deps rootfs build
	@$(call apt_install,$(VM_PACKAGES))
	@bins=$$($(CARGO) test --test cgroup_v2 --test systemd_cgroup --test checkpoint --no-run 2>&1 | \
		sed -n 's/.*Executable tests\/\(cgroup_v2\|systemd_cgroup\|checkpoint\).rs (\(.*\))/\1=\2/p'); \
	v2=$$(echo "$$bins" | sed -n 's/^cgroup_v2=//p'); sd=$$(echo "$$bins" | sed -n 's/^systemd_cgroup=//p'); \
	cr=$$(echo "$$bins" | sed -n 's/^checkpoint=//p'); \
	[ -n "$$v2" ] && [ -n "$$sd" ] && [ -n "$$cr" ] || { echo "test-vm: could not build the VM tests" >&2; exit 1; }; \
	echo "+ vm/run.sh $$v2 --ignored --test-threads=1; $$cr --ignored --test-threads=1"; \
	vm/run.sh sh -c '"$$0" --ignored --test-threads=1; a=$$?; "$$1" --ignored --test-threads=1 && [ $$a -eq 0 ]' \
		$$v2 $$cr || exit 1; \
	echo "+ VM_INIT=systemd vm/run.sh vm/systemd-tests.sh $$v2 $$sd $$cr"; \
	VM_INIT=systemd vm/run.sh vm/systemd-tests.sh $$v2 $$sd $$cr

# umoci, Podman, buildah, containerd and Docker drive rt end to end (e2e/*.sh), each with
# private roots and daemons; one PASS/FAIL line per step. E2E_TOOLS picks some of them.
e2e: e2e-deps build rootfs
	@$(MAKE) --no-print-directory e2e-run

# The scripts alone (what e2e and e2e-vm run); E2E_CGROUP_MANAGER picks the tools' cgroup driver.
e2e-run:
	@rc=0; for t in $(E2E_TOOLS); do echo "+ e2e/$$t.sh"; E2E_CGROUP_MANAGER=$(E2E_CGROUP_MANAGER) RT_REAL=$(abspath $(RT)) bash e2e/$$t.sh || rc=1; done; \
	[ $$rc -eq 0 ] && echo "e2e: all passed" || { echo "e2e: some steps failed" >&2; exit 1; }

# The tools with their default settings on a modern host: in the VM that boots systemd as
# PID 1 with pure cgroup v2, each told to use the systemd cgroup driver (Podman's and Docker's
# default there, and containerd's SystemdCgroup, as Kubernetes recommends). Then Podman with
# cgroupfs on a plain v2 VM (its checkpoint/restore steps run in both: CRIU works on the VMs'
# kernel).
e2e-vm: e2e-deps build rootfs
	@$(call apt_install,$(VM_PACKAGES))
	VM_INIT=systemd vm/run.sh $(MAKE) --no-print-directory e2e-run E2E_TOOLS="$(E2E_VM_TOOLS)" E2E_CGROUP_MANAGER=systemd RT=$(abspath $(RT))
	VM_INIT=sh vm/run.sh $(MAKE) --no-print-directory e2e-run E2E_TOOLS=podman E2E_CGROUP_MANAGER=cgroupfs RT=$(abspath $(RT))

# config.json and --process parsing under libFuzzer for FUZZ_SECONDS each (seeds in
# fuzz/corpus). cargo fuzz needs nightly flags; RUSTC_BOOTSTRAP lets this stable toolchain
# accept them (the only toolchain the build machines have).
FUZZ_SECONDS ?= 30
fuzz: deps
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@for t in config process; do \
		work=$$(mktemp -d /tmp/rt-fuzz.XXXXXX); \
		echo "+ cargo fuzz run $$t ($(FUZZ_SECONDS) s)"; \
		( cd fuzz && RUSTC_BOOTSTRAP=1 flock /tmp/rt-cargo.lock cargo fuzz build $$t ) || exit 1; \
		( set -o pipefail; cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $$t $$work corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=5 -print_final_stats=1 2>&1 | tail -n 3 ); \
		rc=$$?; rm -rf $$work; [ $$rc -eq 0 ] || { echo "fuzz target $$t failed (see fuzz/artifacts)"; exit 1; }; \
	done

lint: deps
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# rt vs runc vs crun, interleaved: run, lifecycle (create/start/state/delete), exec, parallel
# (100 containers, 8 and 100 at a time) and cycles (1000 lifecycles each: no growth, no
# leftovers); a few minutes in all. The tables are bench-results/latest.md; then where one rt
# run spends its time, phase by phase (bench-results/breakdown.md).
bench: bench-deps build rootfs
	python3 bench/bench.py --rt $(RT) $(BENCH_ARGS)
	python3 bench/breakdown.py --rt $(RT)

# Find the functions rt runs on its hot paths again (uprobes on every function of the release
# rt, driven by bench/bench.py: about 5 minutes, most of it the kernel removing the probes) and
# relink with them first: link/hot-text.ld, committed. Redo after a compiler or dependency
# update, whose new symbol hashes leave the generic functions out of the list.
hot-text: bench-deps build rootfs
	python3 bench/hot-text.py --rt $(RT)
	$(MAKE) build

# The same on a host like users' (the VM that boots systemd, pure cgroup v2), each runtime with
# either cgroup driver; TCG inflates absolute times, so read the ratios. The table is
# bench-results/vm-systemd.md. Not parallel and cycles: 100 containers at once in the VM's 2 GiB and
# 6000 cycles under TCG would not fit vm/run.sh's timeout. A second pass (BENCH_VM_FIXED_ARGS,
# bench-results/vm-systemd-fixed-addresses.md) runs with address space randomization off in the
# VM: TCG reuses the code it translated for one process in the next only at the same addresses,
# so with randomization on (as users run) every call also pays for translating all the code it
# runs, which no hardware does; the second table is the runtimes' own work under emulation.
BENCH_VM_ARGS ?= --runtimes rt,rt+systemd,runc,runc+systemd,crun,crun+systemd --iterations 20 --rss-iterations 5 \
	--scenarios run,lifecycle,exec
BENCH_VM_FIXED_ARGS ?= --runtimes rt,rt+systemd,crun,crun+systemd --iterations 20 --rss-iterations 1 \
	--scenarios run,lifecycle,exec
# One line: vm/run.sh hands the VM its command as one.
BENCH_VM_SCRIPT = python3 bench/bench.py --rt $(abspath $(RT)) $(BENCH_VM_ARGS) --out /tmp/bench-vm.md && \
	echo 0 > /proc/sys/kernel/randomize_va_space && \
	python3 bench/bench.py --rt $(abspath $(RT)) $(BENCH_VM_FIXED_ARGS) --out /tmp/bench-vm-fixed.md && \
	echo "--- table" && cat /tmp/bench-vm.md && echo "--- fixed" && cat /tmp/bench-vm-fixed.md
bench-vm: bench-deps build rootfs
	@$(call apt_install,$(VM_PACKAGES))
	@mkdir -p bench-results
	set -o pipefail; VM_INIT=systemd vm/run.sh sh -c '$(BENCH_VM_SCRIPT)' | tee /tmp/rt-bench-vm.log
	@sed -n '/^--- table$$/,/^--- fixed$$/p' /tmp/rt-bench-vm.log | sed '1d;$$d' > bench-results/vm-systemd.md
	@sed -n '/^--- fixed$$/,$$p' /tmp/rt-bench-vm.log | tail -n +2 > bench-results/vm-systemd-fixed-addresses.md
	@echo "wrote bench-results/vm-systemd.md and bench-results/vm-systemd-fixed-addresses.md"
