/* ctl: owns the control protocol and the server thread.
 *
 * Protocol: one request per connection, a line of at most CTL_MAX_REQUEST
 * bytes: fields separated by tabs, ended by a newline; no field holds a tab
 * or a newline. The reply is "ok\n" followed by the payload, or
 * "error\t<reason>\n", and the server closes the connection.
 *
 * Invariants: only peers with uid 0 are served (SO_PEERCRED), the socket
 * file is 0600 in a 0700 directory as a second fence; a malformed,
 * oversized or slow request gets an error reply (a slow one after
 * CTL_TIMEOUT_MS) and the server goes on serving others: connections are
 * read side by side, so an idle client holds up nobody. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <xxhash.h>

#include "relocfs/ctl.h"
#include "relocfs/log.h"

struct ctl_server {
	int fd;
	int stop_pipe[2];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	ctl_handler fn;
	void *arg;
	pthread_t thread;
};

void ctl_socket_path(const char *mountpoint, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%016llx.sock", CTL_DIR,
		 (unsigned long long)XXH3_64bits(mountpoint, strlen(mountpoint)));
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void reply_error(int fd, const char *msg)
{
	char line[1024];

	snprintf(line, sizeof(line), "error\t%s\n", msg);
	write_all(fd, line, strlen(line));
}

/* The request in buf[0..len) once complete: 0 with the newline made a NUL,
 * 1 when more is to come, or a negative errno for a malformed one. */
static int request_complete(char *buf, size_t len)
{
	char *nl = memchr(buf, '\n', len);

	if (nl == NULL)
		return len > CTL_MAX_REQUEST ? -EMSGSIZE : 1;
	if ((size_t)(nl - buf) != len - 1)
		return -EPROTO;	/* bytes after the request */
	*nl = '\0';
	/* No NUL (it would cut a field short) and no control characters
	 * (they would reach a terminal in an error message) but tabs. */
	for (const char *p = buf; p < nl; p++)
		if ((unsigned char)*p < 0x20 ? *p != '\t' : *p == 0x7f)
			return -EILSEQ;
	return 0;
}

static void serve(struct ctl_server *s, int fd, char *req)
{
	char *argv[CTL_MAX_FIELDS], *payload = NULL, err[1024];
	size_t plen = 0;
	int argc = 0, ret;
	FILE *out;

	for (char *p = req; argc < CTL_MAX_FIELDS;) {
		argv[argc++] = p;
		p = strchr(p, '\t');
		if (p == NULL)
			break;
		*p++ = '\0';
		if (argc == CTL_MAX_FIELDS) {
			reply_error(fd, "too many fields");
			return;
		}
	}
	out = open_memstream(&payload, &plen);
	if (out == NULL) {
		reply_error(fd, "out of memory");
		return;
	}
	err[0] = '\0';
	ret = s->fn(s->arg, argc, argv, out, err, sizeof(err));
	fclose(out);
	if (ret < 0) {
		reply_error(fd, err[0] ? err : strerror(-ret));
	} else if (write_all(fd, "ok\n", 3) == 0) {
		write_all(fd, payload, plen);
	}
	free(payload);
}

/* One client connection being read. */
struct conn {
	int fd;
	size_t len;
	uint64_t deadline_ms;
	char buf[CTL_MAX_REQUEST + 2];
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A new connection: refused at once when the peer is not root, else read
 * without blocking, in place of the oldest when CTL_MAX_CONNS are open. */
static void conn_accept(struct ctl_server *s, struct conn **conns, size_t *n)
{
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t clen = sizeof(cred);
	struct timeval tv = { CTL_TIMEOUT_MS / 1000, 0 };
	struct conn *c;
	int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	/* Replies are written blocking, bounded by the timeout. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || cred.uid != 0) {
		log_warning("control: refused a request from uid %d", (int)cred.uid);
		reply_error(fd, "permission denied: only root may control relocfs");
		close(fd);
		return;
	}
	if (*n == CTL_MAX_CONNS) {
		/* A flood of idle clients: the one waiting longest makes room,
		 * so a client that sends at once is always read. */
		size_t old = 0;

		for (size_t i = 1; i < *n; i++)
			if (conns[i]->deadline_ms < conns[old]->deadline_ms)
				old = i;
		reply_error(conns[old]->fd, "dropped: too many connections waiting to send a request");
		close(conns[old]->fd);
		free(conns[old]);
		conns[old] = conns[--*n];
	}
	c = malloc(sizeof(*c));
	if (c == NULL) {
		reply_error(fd, "out of memory");
		close(fd);
		return;
	}
	c->fd = fd;
	c->len = 0;
	c->deadline_ms = mono_ms() + CTL_TIMEOUT_MS;
	conns[(*n)++] = c;
}

/* Reads what c's peer sent; true when c is done with (answered or gone). */
static bool conn_read(struct ctl_server *s, struct conn *c)
{
	ssize_t k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	int ret;

	if (k < 0)
		return errno != EAGAIN && errno != EINTR;
	if (k == 0) {
		reply_error(c->fd, "malformed request");	/* closed before a newline */
		return true;
	}
	c->len += (size_t)k;
	ret = request_complete(c->buf, c->len);
	if (ret == 1)
		return false;
	/* The reply may be larger than the socket buffer: write it blocking,
	 * bounded by SO_SNDTIMEO. */
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
	if (ret == -EMSGSIZE)
		reply_error(c->fd, "request too long");
	else if (ret == -EILSEQ)
		reply_error(c->fd, "malformed request: a NUL or control character");
	else if (ret < 0)
		reply_error(c->fd, "malformed request");
	else
		serve(s, c->fd, c->buf);
	return true;
}

/* Reads every connection as its bytes come, so one slow or idle client
 * never holds up the others; requests are served one at a time. */
static void *server_thread(void *arg)
{
	struct ctl_server *s = arg;
	struct conn *conns[CTL_MAX_CONNS] = { NULL };
	struct pollfd pf[CTL_MAX_CONNS + 2];
	size_t n = 0;

	for (;;) {
		uint64_t now = mono_ms();
		int timeout = -1;

		pf[0] = (struct pollfd){ s->fd, POLLIN, 0 };
		pf[1] = (struct pollfd){ s->stop_pipe[0], POLLIN, 0 };
		for (size_t i = 0; i < n; i++) {
			uint64_t left = conns[i]->deadline_ms > now ? conns[i]->deadline_ms - now : 0;

			pf[i + 2] = (struct pollfd){ conns[i]->fd, POLLIN, 0 };
			if (timeout < 0 || left < (uint64_t)timeout)
				timeout = (int)left;
		}
		if (poll(pf, n + 2, timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		now = mono_ms();
		/* Backwards, so that removing one keeps the others' slots. */
		for (size_t i = n; i-- > 0;) {
			struct conn *c = conns[i];
			bool done;

			if (pf[i + 2].revents)
				done = conn_read(s, c);
			else if ((done = now >= c->deadline_ms))
				reply_error(c->fd, "timed out waiting for the request");
			if (!done)
				continue;
			close(c->fd);
			free(c);
			conns[i] = conns[--n];
		}
		if (pf[0].revents & POLLIN)
			conn_accept(s, conns, &n);
	}
	for (size_t i = 0; i < n; i++) {
		close(conns[i]->fd);
		free(conns[i]);
	}
	return NULL;
}

int ctl_server_start(struct ctl_server **sp, const char *path, ctl_handler fn, void *arg)
{
	struct ctl_server *s = calloc(1, sizeof(*s));
	struct sockaddr_un sa;
	int ret = 0;

	if (s == NULL)
		return -ENOMEM;
	s->fd = -1;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	s->fn = fn;
	s->arg = arg;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		ret = -ENAMETOOLONG;
		goto out;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	if (mkdir(CTL_DIR, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		goto out;
	}
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
		ret = -errno;
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	unlink(path);	/* stale, from a relocfs that died; the lock says we own it */
	if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
	    listen(s->fd, CTL_MAX_CONNS) < 0) {
		ret = -errno;
		goto out;
	}
	ret = -pthread_create(&s->thread, NULL, server_thread, s);
out:
	if (ret < 0) {
		if (s->fd >= 0)
			close(s->fd);
		if (s->stop_pipe[0] >= 0) {
			close(s->stop_pipe[0]);
			close(s->stop_pipe[1]);
		}
		free(s);
		return ret;
	}
	*sp = s;
	return 0;
}

void ctl_server_stop(struct ctl_server *s)
{
	if (s == NULL)
		return;
	if (write(s->stop_pipe[1], "x", 1) != 1)
		log_warning("control: cannot wake the server thread");
	pthread_join(s->thread, NULL);
	close(s->fd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	unlink(s->path);
	free(s);
}

int ctl_call(const char *path, int argc, const char *const *argv, char **reply)
{
	struct sockaddr_un sa;
	char req[CTL_MAX_REQUEST + 1];
	size_t len = 0, cap = 4096, got = 0;
	char *buf = NULL;
	int fd, ret = 0;

	for (int i = 0; i < argc; i++) {
		size_t n = strlen(argv[i]);

		if (strpbrk(argv[i], "\t\n") != NULL)
			return -EINVAL;
		if (len + n + 2 > sizeof(req))
			return -EMSGSIZE;
		memcpy(req + len, argv[i], n);
		len += n;
		req[len++] = i + 1 < argc ? '\t' : '\n';
	}
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		goto out;
	}
	ret = write_all(fd, req, len);
	if (ret < 0)
		goto out;
	buf = malloc(cap + 1);
	if (buf == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (got == cap) {
			char *p = realloc(buf, cap * 2 + 1);

			if (p == NULL) {
				ret = -ENOMEM;
				goto out;
			}
			buf = p;
			cap *= 2;
		}
		n = recv(fd, buf + got, cap - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*reply = buf;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return ret;
}
