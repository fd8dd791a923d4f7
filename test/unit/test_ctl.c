/* Unit tests of the control socket: ctl_call against a live server, the
 * client's refusals, and the server's handling of oversized, malformed,
 * silent and non-root clients, after which it must still serve. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "relocfs/ctl.h"
#include "relocfs/log.h"
#include "unit.h"

static char dir[64];
static char sock[100];
static struct ctl_server *srv;
static int handler_calls;	/* atomic */

/* Echoes its fields joined by ','; "fail" is an error with reason "bad". */
static int handler(void *arg, int argc, char **argv, FILE *out, char *err, size_t errlen)
{
	(void)arg;
	__atomic_add_fetch(&handler_calls, 1, __ATOMIC_RELAXED);
	if (argc > 0 && strcmp(argv[0], "fail") == 0) {
		snprintf(err, errlen, "bad");
		return -EINVAL;
	}
	for (int i = 0; i < argc; i++)
		fprintf(out, "%s%s", i ? "," : "", argv[i]);
	fputc('\n', out);
	return 0;
}

static int calls(void)
{
	return __atomic_load_n(&handler_calls, __ATOMIC_RELAXED);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int raw_connect(void)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads what the server says until it closes (EOF, or a reset because it
 * left our excess bytes unread), at most timeout_ms. Returns the bytes read,
 * -1 when nothing came before the timeout. */
static ssize_t read_reply(int fd, char *buf, size_t cap, int timeout_ms)
{
	size_t got = 0;
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	while (got + 1 < cap) {
		struct pollfd pf = { fd, POLLIN, 0 };
		uint64_t now = now_ms();
		ssize_t n;

		if (now >= end || poll(&pf, 1, (int)(end - now)) <= 0) {
			buf[got] = '\0';
			return -1;
		}
		n = recv(fd, buf + got, cap - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

/* Sends len bytes as one message and returns the reply in buf. */
static ssize_t raw_request(const char *data, size_t len, char *buf, size_t cap)
{
	int fd = raw_connect();
	ssize_t n;

	if (fd < 0)
		return -1;
	if (len > 0 && send(fd, data, len, MSG_NOSIGNAL) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	n = read_reply(fd, buf, cap, 10000);
	close(fd);
	return n;
}

/* ctl_call of argv; 0 when the reply equals want. */
static int call_expect(int argc, const char *const *argv, const char *want)
{
	char *reply = NULL;
	int ret = ctl_call(sock, argc, argv, &reply);

	if (ret < 0) {
		printf("# ctl_call: %s\n", strerror(-ret));
		return ret;
	}
	if (strcmp(reply, want) != 0) {
		printf("# reply \"%s\", want \"%s\"\n", reply, want);
		ret = -1;
	}
	free(reply);
	return ret;
}

static bool is_root(void)
{
	return geteuid() == 0;
}

#define SKIP_UNLESS_ROOT(fn)                                                  \
	do {                                                                 \
		if (is_root() && srv != NULL) {                              \
			UNIT_RUN(fn);                                        \
		} else {                                                     \
			unit_n++;                                            \
			printf("ok %d - %s # skip not root\n", unit_n, #fn); \
		}                                                            \
	} while (0)

static void test_socket_path(void)
{
	char a[256], b[256], c[256];

	ctl_socket_path("/mnt/datastore", a, sizeof(a));
	ctl_socket_path("/mnt/datastore", b, sizeof(b));
	ctl_socket_path("/mnt/datastore2", c, sizeof(c));
	CHECK_STR(a, b);
	CHECK(strcmp(a, c) != 0);
	CHECK(strncmp(a, CTL_DIR "/", strlen(CTL_DIR) + 1) == 0);
	CHECK(strchr(a + strlen(CTL_DIR) + 1, '/') == NULL);
	CHECK_EQ(strlen(a), strlen(CTL_DIR) + 1 + 16 + strlen(".sock"));
	CHECK_STR(a + strlen(a) - 5, ".sock");
	CHECK(strlen(a) < sizeof(((struct sockaddr_un *)0)->sun_path));
}

/* Refused before anything is sent: no server is needed. */
static void test_call_refuses_bad_fields(void)
{
	static char big[CTL_MAX_REQUEST + 16];
	const char *tab[] = { "status", "a\tb" };
	const char *nl[] = { "status\n" };
	const char *two[] = { big, "x" };
	char *reply = (char *)"untouched";
	int before = calls();

	CHECK_EQ(ctl_call(sock, 2, tab, &reply), -EINVAL);
	CHECK_EQ(ctl_call(sock, 1, nl, &reply), -EINVAL);
	memset(big, 'x', CTL_MAX_REQUEST);
	big[CTL_MAX_REQUEST] = '\0';
	CHECK_EQ(ctl_call(sock, 1, two, &reply), -EMSGSIZE);
	/* A line of CTL_MAX_REQUEST + 1 bytes, over several fields. */
	big[CTL_MAX_REQUEST - 2] = '\0';
	CHECK_EQ(ctl_call(sock, 2, two, &reply), -EMSGSIZE);
	CHECK_STR(reply, "untouched");
	CHECK_EQ(calls(), before);
}

static void test_call_ok(void)
{
	const char *a[] = { "echo", "a b", "c%d", "" };
	const char *one[] = { "status" };
	int before = calls();

	CHECK_EQ(call_expect(4, a, "ok\necho,a b,c%d,\n"), 0);
	CHECK_EQ(call_expect(1, one, "ok\nstatus\n"), 0);
	CHECK_EQ(calls(), before + 2);
}

static void test_call_error_reply(void)
{
	const char *a[] = { "fail", "x" };

	CHECK_EQ(call_expect(2, a, "error\tbad\n"), 0);
}

/* The longest request ctl_call sends: a line of CTL_MAX_REQUEST bytes. */
static void test_call_max_request(void)
{
	static char big[CTL_MAX_REQUEST + 8], want[CTL_MAX_REQUEST + 16];
	const char *a[] = { big };
	const char *b[] = { big };

	memset(big, 'y', CTL_MAX_REQUEST - 1);
	big[CTL_MAX_REQUEST - 1] = '\0';
	snprintf(want, sizeof(want), "ok\n%s\n", big);
	CHECK_EQ(call_expect(1, a, want), 0);
	big[CTL_MAX_REQUEST - 1] = 'y';
	big[CTL_MAX_REQUEST] = '\0';
	{
		char *reply = NULL;

		CHECK_EQ(ctl_call(sock, 1, b, &reply), -EMSGSIZE);
	}
}

static void test_too_many_fields(void)
{
	const char *a[CTL_MAX_FIELDS + 1];
	char want[256] = "ok\n";

	for (int i = 0; i < CTL_MAX_FIELDS + 1; i++)
		a[i] = "f";
	for (int i = 0; i < CTL_MAX_FIELDS; i++)
		strcat(want, i ? ",f" : "f");
	strcat(want, "\n");
	CHECK_EQ(call_expect(CTL_MAX_FIELDS, a, want), 0);
	CHECK_EQ(call_expect(CTL_MAX_FIELDS + 1, a, "error\ttoo many fields\n"), 0);
}

static void test_raw_oversized_line(void)
{
	static char big[5000];
	char reply[256];
	int before = calls();

	memset(big, 'z', sizeof(big));
	CHECK(raw_request(big, sizeof(big), reply, sizeof(reply)) > 0);
	CHECK_STR(reply, "error\trequest too long\n");
	/* Just over the limit, without a newline. */
	CHECK(raw_request(big, CTL_MAX_REQUEST + 1, reply, sizeof(reply)) > 0);
	CHECK_STR(reply, "error\trequest too long\n");
	CHECK_EQ(calls(), before);
}

static void test_raw_bytes_after_newline(void)
{
	static const char req[] = "status\nextra";
	static const char req2[] = "status\n\n";
	char reply[256];
	int before = calls();

	CHECK(raw_request(req, sizeof(req) - 1, reply, sizeof(reply)) > 0);
	CHECK_STR(reply, "error\tmalformed request\n");
	CHECK(raw_request(req2, sizeof(req2) - 1, reply, sizeof(reply)) > 0);
	CHECK_STR(reply, "error\tmalformed request\n");
	CHECK_EQ(calls(), before);
}

/* Closed before the newline: no request to serve. */
static void test_raw_closed_early(void)
{
	char reply[256];
	int fd = raw_connect(), before = calls();

	CHECK(fd >= 0);
	CHECK_EQ(send(fd, "status", 6, MSG_NOSIGNAL), 6);
	CHECK_EQ(shutdown(fd, SHUT_WR), 0);
	CHECK(read_reply(fd, reply, sizeof(reply), 10000) >= 0);
	close(fd);
	CHECK_STR(reply, "error\tmalformed request\n");
	CHECK_EQ(calls(), before);
}

static void test_raw_non_root_peer(void)
{
	char reply[256] = "";
	int pfd[2], status = 0;
	ssize_t n;
	pid_t pid;

	/* Open the filesystem fence (0700 dir, 0600 socket) so that the
	 * SO_PEERCRED check is what refuses the peer. */
	CHECK_EQ(chmod(dir, 0755), 0);
	CHECK_EQ(chmod(sock, 0666), 0);
	CHECK_EQ(pipe(pfd), 0);
	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		char buf[256];
		ssize_t k = -1;
		int fd;

		close(pfd[0]);
		if (setgroups(0, NULL) == 0 && setresgid(65534, 65534, 65534) == 0 &&
		    setresuid(65534, 65534, 65534) == 0 && (fd = raw_connect()) >= 0) {
			/* The server may refuse (and close) before this
			 * arrives: the reply is read all the same. */
			(void)!send(fd, "status\n", 7, MSG_NOSIGNAL);
			k = read_reply(fd, buf, sizeof(buf), 10000);
			close(fd);
		}
		if (k < 0)
			k = snprintf(buf, sizeof(buf), "child failed: %s", strerror(errno));
		if (write(pfd[1], buf, (size_t)k) < 0)
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	n = read(pfd[0], reply, sizeof(reply) - 1);
	close(pfd[0]);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(n > 0);
	reply[n] = '\0';
	CHECK_EQ(chmod(sock, 0600), 0);
	CHECK_EQ(chmod(dir, 0700), 0);
	if (strncmp(reply, "error\tpermission denied", 23) != 0)
		printf("# reply to uid 65534: \"%s\"\n", reply);
	CHECK(strncmp(reply, "error\tpermission denied", 23) == 0);
	CHECK(reply[n - 1] == '\n');
}

struct bg_call {
	int ret;
	char *reply;
	uint64_t done_ms;
};

static void *bg_caller(void *arg)
{
	struct bg_call *c = arg;
	const char *a[] = { "behind", "idle" };

	c->ret = ctl_call(sock, 2, a, &c->reply);
	c->done_ms = now_ms();
	return NULL;
}

/* A client that connects and says nothing holds up nobody: a request sent
 * after it is answered while it is still connected and unanswered; it
 * gets a timeout error in the end. */
static void test_raw_idle_client_dropped(void)
{
	struct bg_call c = { 0 };
	struct pollfd pf;
	char reply[256];
	ssize_t n;
	int fd = raw_connect();

	CHECK(fd >= 0);
	usleep(100 * 1000);	/* the server has accepted the idle one */
	c.ret = -1;
	bg_caller(&c);
	CHECK_EQ(c.ret, 0);
	CHECK_STR(c.reply, "ok\nbehind,idle\n");
	free(c.reply);
	pf = (struct pollfd){ fd, POLLIN, 0 };
	CHECK_EQ(poll(&pf, 1, 0), 0);	/* nothing for the idle one yet */
	n = read_reply(fd, reply, sizeof(reply), 3 * CTL_TIMEOUT_MS);
	close(fd);
	CHECK(n > 0);
	CHECK_STR(reply, "error\ttimed out waiting for the request\n");
}

/* A flood of idle connections beyond what the server reads at once: the
 * oldest are dropped with an error; root's requests are still answered. */
static void test_raw_flood_refused(void)
{
	int fds[CTL_MAX_CONNS + 4];
	const char *a[] = { "through", "flood" };
	char reply[256];
	int busy = 0, i;

	for (i = 0; i < CTL_MAX_CONNS + 4; i++)
		fds[i] = raw_connect();
	usleep(200 * 1000);
	for (i = 0; i < CTL_MAX_CONNS + 4; i++) {
		struct pollfd pf = { fds[i], POLLIN, 0 };

		if (fds[i] >= 0 && poll(&pf, 1, 0) == 1 &&
		    read_reply(fds[i], reply, sizeof(reply), 1000) > 0 &&
		    strstr(reply, "dropped: too many connections") != NULL)
			busy++;
	}
	for (i = 0; i < CTL_MAX_CONNS + 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	CHECK(busy >= 4);
	CHECK_EQ(call_expect(2, a, "ok\nthrough,flood\n"), 0);
}

/* A NUL or a control character in a request is refused, not cut short. */
static void test_raw_nul_refused(void)
{
	static const char req1[] = "echo\tok\0\tjunk\n", req2[] = "echo\t\x1b[2J\n";
	char reply[256];
	int fd = raw_connect();

	CHECK(fd >= 0);
	CHECK(send(fd, req1, sizeof(req1) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(req1) - 1);
	CHECK(read_reply(fd, reply, sizeof(reply), 5000) > 0);
	close(fd);
	CHECK_STR(reply, "error\tmalformed request: a NUL or control character\n");
	fd = raw_connect();
	CHECK(fd >= 0);
	CHECK(send(fd, req2, sizeof(req2) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(req2) - 1);
	CHECK(read_reply(fd, reply, sizeof(reply), 5000) > 0);
	close(fd);
	CHECK_STR(reply, "error\tmalformed request: a NUL or control character\n");
}

static void test_still_serving(void)
{
	const char *a[] = { "still", "here" };

	CHECK_EQ(call_expect(2, a, "ok\nstill,here\n"), 0);
}

static void test_stop_removes_socket(void)
{
	struct stat st;
	char *reply = NULL;
	const char *a[] = { "x" };

	CHECK_EQ(stat(sock, &st), 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_EQ(st.st_mode & 0777, 0600);
	ctl_server_stop(srv);
	srv = NULL;
	CHECK_EQ(stat(sock, &st), -1);
	CHECK_EQ(errno, ENOENT);
	CHECK(ctl_call(sock, 1, a, &reply) < 0);
}

/* A socket left by a relocfs that died is replaced. */
static void test_start_replaces_stale_socket(void)
{
	struct sockaddr_un sa;
	const char *a[] = { "fresh" };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	CHECK(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	CHECK_EQ(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	CHECK_EQ(ctl_server_start(&srv, sock, handler, NULL), 0);
	CHECK_EQ(call_expect(1, a, "ok\nfresh\n"), 0);
	ctl_server_stop(srv);
	srv = NULL;
	CHECK_EQ(access(sock, F_OK), -1);
}

int main(void)
{
	char cmd[128];
	int ret;

	signal(SIGPIPE, SIG_IGN);
	log_init("test_ctl", LOG_LVL_ERROR);
	snprintf(dir, sizeof(dir), "/tmp/relocfs-unit-ctl-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	if (is_root()) {
		ret = ctl_server_start(&srv, sock, handler, NULL);
		if (ret < 0) {
			printf("# ctl_server_start: %s\n", strerror(-ret));
			srv = NULL;
		}
	}

	UNIT_RUN(test_socket_path);
	UNIT_RUN(test_call_refuses_bad_fields);
	SKIP_UNLESS_ROOT(test_call_ok);
	SKIP_UNLESS_ROOT(test_call_error_reply);
	SKIP_UNLESS_ROOT(test_call_max_request);
	SKIP_UNLESS_ROOT(test_too_many_fields);
	SKIP_UNLESS_ROOT(test_raw_oversized_line);
	SKIP_UNLESS_ROOT(test_raw_bytes_after_newline);
	SKIP_UNLESS_ROOT(test_raw_closed_early);
	SKIP_UNLESS_ROOT(test_raw_non_root_peer);
	SKIP_UNLESS_ROOT(test_raw_idle_client_dropped);
	SKIP_UNLESS_ROOT(test_raw_flood_refused);
	SKIP_UNLESS_ROOT(test_raw_nul_refused);
	SKIP_UNLESS_ROOT(test_still_serving);
	SKIP_UNLESS_ROOT(test_stop_removes_socket);
	if (is_root()) {
		UNIT_RUN(test_start_replaces_stale_socket);
	} else {
		unit_n++;
		printf("ok %d - test_start_replaces_stale_socket # skip not root\n", unit_n);
	}

	if (srv != NULL)
		ctl_server_stop(srv);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		abort();
	return UNIT_DONE();
}
