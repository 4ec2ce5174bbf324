/* benchapp: the "app" the benchmark runs under each init (bench/run compiles it static).
 *
 *   benchapp wait        print "R <pid>\n", then pause(); SIGTERM (default action) kills it at once
 *   benchapp sig         like wait, plus a SIGUSR1 handler that writes CLOCK_MONOTONIC (int64 ns,
 *                        native endian, 8 bytes) to stdout each time it runs
 *   benchapp orphans N   make N orphans: a middle process forks N grandchildren that exit at once;
 *                        the middle waits (WNOWAIT, without reaping) until all N are zombies, then
 *                        exits, so the init inherits N zombies in one go (the kernel re-parents them
 *                        and sends the init a SIGCHLD for each, which coalesce). Then poll until the
 *                        init has reaped them all and print one line:
 *                        "O n=N made=M made_ns=.. reap_ns=.. left=L zombies=Z\n"
 *                        made_ns: fork start until the middle exits; reap_ns: from the middle's
 *                        _exit until kill(pid, 0) fails for every orphan (the init reaped it);
 *                        left/zombies: orphans still present / in state Z after 20 s.
 *                        Run it as PID 1's child in a fresh pid namespace so the pids are only ours.
 *   benchapp drain       copy stdin to stdout until EOF, 64 KiB per read(2): the log collector at
 *                        the far end of an init's stderr pipe (the container case)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(3);
		}
		p += n;
		len -= (size_t)n;
	}
}

static void ready(void)
{
	char line[64];
	int n = snprintf(line, sizeof line, "R %d\n", (int)getpid());
	write_all(1, line, (size_t)n);
}

static void on_usr1(int sig)
{
	(void)sig;
	int saved = errno;
	int64_t t = now_ns();
	write_all(1, &t, sizeof t);
	errno = saved;
}

static int orphans(int n)
{
	int pids[2];
	if (pipe2(pids, O_CLOEXEC) < 0) {
		perror("benchapp: pipe");
		return 1;
	}
	int64_t t0 = now_ns();
	pid_t middle = fork();
	if (middle < 0) {
		perror("benchapp: fork");
		return 1;
	}
	if (middle == 0) {
		close(pids[0]);
		pid_t *list = calloc((size_t)n, sizeof *list);
		int made = 0;
		for (int i = 0; i < n; i++) {
			pid_t c = fork();
			if (c < 0)
				break;
			if (c == 0)
				_exit(0);
			list[made++] = c;
		}
		for (int i = 0; i < made; i++) {
			siginfo_t si;
			while (waitid(P_PID, (id_t)list[i], &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
				;
		}
		write_all(pids[1], list, (size_t)made * sizeof *list);
		int64_t t_exit = now_ns();
		write_all(pids[1], &t_exit, sizeof t_exit);
		_exit(made == n ? 0 : 1);
	}
	close(pids[1]);
	size_t cap = (size_t)n * sizeof(pid_t) + sizeof(int64_t);
	char *buf = calloc(1, cap);
	size_t got = 0;
	for (;;) {
		ssize_t r = read(pids[0], buf + got, cap - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	int st;
	while (waitpid(middle, &st, 0) < 0 && errno == EINTR)
		;
	if (got < sizeof(int64_t)) {
		fprintf(stderr, "benchapp: the middle process reported nothing\n");
		return 1;
	}
	int64_t t1;
	memcpy(&t1, buf + got - sizeof t1, sizeof t1);
	pid_t *list = (pid_t *)buf;
	int made = (int)((got - sizeof t1) / sizeof *list);
	int left = made;
	int64_t deadline = t1 + 20LL * 1000000000;
	struct timespec nap = {0, 200000};
	while (left > 0 && now_ns() < deadline) {
		int keep = 0;
		for (int i = 0; i < left; i++)
			if (kill(list[i], 0) == 0)
				list[keep++] = list[i];
		left = keep;
		if (left > 0)
			nanosleep(&nap, NULL);
	}
	int64_t t2 = now_ns();
	int zombies = 0;
	for (int i = 0; i < left; i++) {
		char path[64], stat[256];
		snprintf(path, sizeof path, "/proc/%d/stat", (int)list[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t r = read(fd, stat, sizeof stat - 1);
		close(fd);
		if (r <= 0)
			continue;
		stat[r] = 0;
		char *rp = strrchr(stat, ')');
		if (rp && rp[1] == ' ' && rp[2] == 'Z')
			zombies++;
	}
	char line[256];
	int len = snprintf(line, sizeof line, "O n=%d made=%d made_ns=%lld reap_ns=%lld left=%d zombies=%d\n",
			   n, made, (long long)(t1 - t0), (long long)(t2 - t1), left, zombies);
	write_all(1, line, (size_t)len);
	return made == n ? 0 : 1;
}

static int drain(void)
{
	static char buf[65536];
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("benchapp: drain: read");
			return 1;
		}
		write_all(1, buf, (size_t)n);
	}
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "wait") == 0) {
		ready();
		for (;;)
			pause();
	}
	if (argc >= 2 && strcmp(argv[1], "sig") == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_usr1;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR1, &sa, NULL);
		sigset_t set;
		sigemptyset(&set);
		sigprocmask(SIG_SETMASK, &set, NULL);
		ready();
		for (;;)
			pause();
	}
	if (argc >= 3 && strcmp(argv[1], "orphans") == 0)
		return orphans(atoi(argv[2]));
	if (argc >= 2 && strcmp(argv[1], "drain") == 0)
		return drain();
	fprintf(stderr, "usage: benchapp wait | sig | orphans N | drain\n");
	return 2;
}
