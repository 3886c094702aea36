/* The kernel's floor for one `run` of the benchmark's container: what any runtime must have the
 * kernel do for that config, and nothing else. No C library (its start-up would be measured
 * too), no checks, no safe path resolution, no state, no device filter, no capabilities:
 * a lower bound, not a runtime. bench/breakdown.py builds and times it beside rt.
 *
 *   floor ROOTFS CGROUP2_DIR [V1_DIR...]   (as root; where to make its cgroups)
 *
 * Parent: mkdir the cgroup, clone3 into it with a new pid namespace; while the child unshares
 * its mount, network, ipc and uts namespaces, a cgroup in each v1 hierarchy given, then a
 * byte down a pipe, after which the child joins them; wait, rmdir. (The same division of work
 * as rt's: the network namespace alone takes longer than the v1 cgroups.) Child: the byte, its
 * cgroup namespace, / made a slave, the rootfs bound, the config's mounts
 * (proc, /dev tmpfs, devpts, shm, mqueue, sysfs read-only, /tmp), the six device nodes and
 * five /dev links, the masked and read-only paths, the read-only root, pivot_root, the old
 * root detached, the hostname, then execve of /bin/true. Exit status 0 if all of it worked.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

static long sys(long n, long a, long b, long c, long d, long e, long f)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}

/* gcc may emit these for the struct initialisers. */
void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--) *p++ = (unsigned char)c;
	return d;
}

static void die(int code) { sys(SYS_exit_group, code, 0, 0, 0, 0, 0); }
static void ok(long r, int code) { if (r < 0) die(code); }
static long mnt(const char *src, const char *dst, const char *type, unsigned long fl, const char *data)
{
	return sys(SYS_mount, (long)src, (long)dst, (long)type, fl, (long)data, 0);
}

static char buf[4096];
static char *at(const char *root, const char *rel)
{
	char *p = buf;
	while (*root) *p++ = *root++;
	while (*rel) *p++ = *rel++;
	*p = 0;
	return buf;
}

static char v1[16][512];
static int nv1;
static int go[2]; /* the parent's "cgroups made" to the child */

static void child(const char *root)
{
	static const char *masked_files[] = {"/proc/kcore", "/proc/keys", "/proc/latency_stats",
					     "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", 0};
	static const char *masked_dirs[] = {"/proc/acpi", "/proc/asound", "/sys/firmware", "/proc/scsi", 0};
	static const char *ro[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", 0};
	static const struct { const char *name; int maj, min; } dev[] = {
		{"/dev/null", 1, 3}, {"/dev/zero", 1, 5}, {"/dev/full", 1, 7},
		{"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
	static const char *link[][2] = {{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}, {"pts/ptmx", "/dev/ptmx"}};
	char null[256], byte;

	ok(sys(SYS_unshare, CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS, 0, 0, 0, 0, 0), 9);
	ok(sys(SYS_read, go[0], (long)&byte, 1, 0, 0, 0) == 1 ? 0 : -1, 9);
	for (int i = 0; i < nv1; i++) { /* "0" to tasks: no global lock (see rt's join_v1_self) */
		long fd = sys(SYS_open, (long)at(v1[i], "/tasks"), O_WRONLY, 0, 0, 0, 0);
		ok(fd, 9);
		ok(sys(SYS_write, fd, (long)"0", 1, 0, 0, 0), 9);
		sys(SYS_close, fd, 0, 0, 0, 0, 0);
	}
	ok(sys(SYS_unshare, CLONE_NEWCGROUP, 0, 0, 0, 0, 0), 9);
	ok(mnt(0, "/", 0, MS_REC | MS_SLAVE, 0), 10);
	ok(mnt(root, root, 0, MS_BIND | MS_REC, 0), 11);
	ok(mnt("proc", at(root, "/proc"), "proc", 0, 0), 12);
	ok(mnt("tmpfs", at(root, "/dev"), "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"), 13);
	ok(sys(SYS_mkdir, (long)at(root, "/dev/pts"), 0755, 0, 0, 0, 0), 14);
	ok(mnt("devpts", buf, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"), 15);
	ok(sys(SYS_mkdir, (long)at(root, "/dev/shm"), 0755, 0, 0, 0, 0), 16);
	ok(mnt("shm", buf, "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV, "mode=1777,size=65536k"), 17);
	ok(sys(SYS_mkdir, (long)at(root, "/dev/mqueue"), 0755, 0, 0, 0, 0), 18);
	ok(mnt("mqueue", buf, "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV, 0), 19);
	ok(mnt("sysfs", at(root, "/sys"), "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY, 0), 20);
	ok(mnt("tmpfs", at(root, "/tmp"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=16m"), 21);
	for (int i = 0; i < 6; i++)
		ok(sys(SYS_mknod, (long)at(root, dev[i].name), S_IFCHR | 0666, makedev(dev[i].maj, dev[i].min), 0, 0, 0), 22);
	for (int i = 0; i < 5; i++)
		ok(sys(SYS_symlink, (long)link[i][0], (long)at(root, link[i][1]), 0, 0, 0, 0), 23);
	at(root, "/dev/null");
	for (int i = 0; buf[i]; i++) null[i] = buf[i], null[i + 1] = 0;
	for (int i = 0; masked_files[i]; i++)
		mnt(null, at(root, masked_files[i]), 0, MS_BIND, 0); /* some don't exist: as runtimes, skip */
	for (int i = 0; masked_dirs[i]; i++)
		mnt("tmpfs", at(root, masked_dirs[i]), "tmpfs", MS_RDONLY, "nr_blocks=1,nr_inodes=1");
	for (int i = 0; ro[i]; i++)
		if (mnt(at(root, ro[i]), buf, 0, MS_BIND | MS_REC, 0) == 0)
			ok(mnt(0, buf, 0, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, 0), 24);
	ok(mnt(0, root, 0, MS_BIND | MS_REMOUNT | MS_RDONLY, 0), 25);
	ok(sys(SYS_chdir, (long)root, 0, 0, 0, 0, 0), 26);
	ok(sys(SYS_pivot_root, (long)".", (long)".", 0, 0, 0, 0), 27);
	ok(mnt(0, ".", 0, MS_REC | MS_SLAVE, 0), 28);
	ok(sys(SYS_umount2, (long)".", MNT_DETACH, 0, 0, 0, 0), 29);
	ok(sys(SYS_chdir, (long)"/", 0, 0, 0, 0, 0), 30);
	ok(sys(SYS_sethostname, (long)"floor", 5, 0, 0, 0, 0), 31);
	static char *argv[] = {"/bin/true", 0}, *envp[] = {"PATH=/bin", 0};
	sys(SYS_execve, (long)argv[0], (long)argv, (long)envp, 0, 0, 0);
	die(32);
}

static void leaf(char *out, const char *dir)
{
	int n = 0;
	while (dir[n]) out[n] = dir[n], n++;
	for (const char *l = "/rt-floor"; *l; l++) out[n++] = *l;
	out[n] = 0;
}

static int is_cpuset(const char *p)
{
	for (; *p; p++)
		if (p[0] == 'c' && p[1] == 'p' && p[2] == 'u' && p[3] == 's' && p[4] == 'e' && p[5] == 't')
			return 1;
	return 0;
}

/* DIR/FILE = DIR/../FILE */
static void copy_up(const char *dir, const char *file)
{
	static char parent[512], val[256];
	int n = 0, slash = 0;
	for (; dir[n]; n++) {
		parent[n] = dir[n];
		if (dir[n] == '/')
			slash = n;
	}
	parent[slash] = 0;
	long fd = sys(SYS_open, (long)at(parent, file), O_RDONLY, 0, 0, 0, 0);
	ok(fd, 8);
	long len = sys(SYS_read, fd, (long)val, sizeof val, 0, 0, 0);
	ok(len, 8);
	sys(SYS_close, fd, 0, 0, 0, 0, 0);
	fd = sys(SYS_open, (long)at(dir, file), O_WRONLY, 0, 0, 0, 0);
	ok(fd, 8);
	ok(sys(SYS_write, fd, (long)val, len, 0, 0, 0), 8);
	sys(SYS_close, fd, 0, 0, 0, 0, 0);
}

static int run(const char *root, const char *cgdir)
{
	static char name[512];
	leaf(name, cgdir);
	ok(sys(SYS_mkdir, (long)name, 0755, 0, 0, 0, 0), 2);
	long cg = sys(SYS_open, (long)name, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0, 0, 0);
	ok(cg, 3);
	ok(sys(SYS_pipe2, (long)go, O_CLOEXEC, 0, 0, 0, 0), 3);
	struct clone_args a = {0};
	a.flags = CLONE_NEWPID | CLONE_INTO_CGROUP;
	a.exit_signal = SIGCHLD;
	a.cgroup = (uint64_t)cg;
	long pid = sys(SYS_clone3, (long)&a, sizeof a, 0, 0, 0, 0);
	if (pid == 0)
		child(root);
	ok(pid, 4);
	for (int i = 0; i < nv1; i++) {
		ok(sys(SYS_mkdir, (long)v1[i], 0755, 0, 0, 0, 0), 2);
		if (v1[i][0] && is_cpuset(v1[i])) /* born empty: the parent's cpus and mems */
			copy_up(v1[i], "/cpuset.cpus"), copy_up(v1[i], "/cpuset.mems");
	}
	ok(sys(SYS_write, go[1], (long)"x", 1, 0, 0, 0), 9);
	int status = -1;
	ok(sys(SYS_wait4, pid, (long)&status, 0, 0, 0, 0), 5);
	sys(SYS_close, cg, 0, 0, 0, 0, 0);
	ok(sys(SYS_rmdir, (long)name, 0, 0, 0, 0, 0), 6);
	for (int i = 0; i < nv1; i++)
		ok(sys(SYS_rmdir, (long)v1[i], 0, 0, 0, 0, 0), 6);
	return status == 0 ? 0 : 7;
}

__attribute__((force_align_arg_pointer)) void _start_c(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	if (argc < 3 || argc > 3 + 16)
		die(1);
	for (nv1 = 0; nv1 < argc - 3; nv1++)
		leaf(v1[nv1], argv[3 + nv1]);
	die(run(argv[1], argv[2]));
}

__asm__(".text\n.global _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call _start_c\n");
