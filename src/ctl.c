/* ctl: owns the control protocol and the server thread.
 *
 * Protocol: one request per connection, a line of at most CTL_MAX_REQUEST
 * bytes: fields separated by tabs, ended by a newline; no field holds a tab
 * or a newline. The reply is "ok\n" followed by the payload, or
 * "error\t<reason>\n", and the server closes the connection.
 *
 * Invariants: only peers with uid 0 are served (SO_PEERCRED), the socket
 * file is 0600 in a 0700 directory as a second fence; a malformed,
 * oversized or slow request gets an error reply (or is dropped after a
 * timeout) and the server goes on serving others. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Reads one request line; -EMSGSIZE when longer than allowed. */
static int read_request(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len < cap) {
		ssize_t n = recv(fd, buf + len, cap - len, 0);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPROTO;	/* closed before a newline */
		nl = memchr(buf + len, '\n', (size_t)n);
		len += (size_t)n;
		if (nl != NULL) {
			if ((size_t)(nl - buf) != len - 1)
				return -EPROTO;	/* bytes after the request */
			*nl = '\0';
			return 0;
		}
	}
	return -EMSGSIZE;
}

static void serve(struct ctl_server *s, int fd)
{
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t clen = sizeof(cred);
	struct timeval tv = { 5, 0 };
	char req[CTL_MAX_REQUEST + 1], err[1024];
	char *argv[CTL_MAX_FIELDS], *payload = NULL;
	size_t plen = 0;
	int argc = 0, ret;
	FILE *out;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || cred.uid != 0) {
		log_warning("control: refused a request from uid %d", (int)cred.uid);
		reply_error(fd, "permission denied: only root may control relocfs");
		return;
	}
	ret = read_request(fd, req, CTL_MAX_REQUEST + 1);
	if (ret == -EMSGSIZE) {
		reply_error(fd, "request too long");
		return;
	}
	if (ret < 0) {
		reply_error(fd, "malformed request");
		return;
	}
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

static void *server_thread(void *arg)
{
	struct ctl_server *s = arg;
	struct pollfd pf[2] = { { s->fd, POLLIN, 0 }, { s->stop_pipe[0], POLLIN, 0 } };

	for (;;) {
		int fd;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve(s, fd);
		close(fd);
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
	    listen(s->fd, 16) < 0) {
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
