/* bench_sink.c - benchmark helper: the bare evhttp ceiling, or a fast counting mock Sentry upstream. */
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#define USAGE \
	"usage: bench_sink --port P [--address A] --mode ceiling|upstream\n" \
	"                  [--down-until-count N] [--down-file PATH] [--down]\n" \
	"  ceiling:  every request gets 200 {} at once (no Redis, no parsing): the evhttp ceiling.\n" \
	"  upstream: a fast mock Sentry. POSTs under /api/ are counted and answered 200 {\"id\":...},\n" \
	"            or 503 while down: --down (from start), the first N (--down-until-count),\n" \
	"            while PATH exists (--down-file), or between POST /__down and POST /__up.\n" \
	"            GET /__count -> {\"received\",\"answered_2xx\",\"answered_503\",...}; POST /__reset.\n" \
	"  --port 0 picks a free port. \"READY <port>\" is printed on stdout once listening.\n"

enum mode { MODE_CEILING, MODE_UPSTREAM };

struct sink {
	enum mode mode;
	bool down;                  /* set by --down and POST /__down, cleared by POST /__up */
	long long down_until;       /* the first N /api/ POSTs get 503 */
	const char *down_file;      /* 503 while this file exists */
	unsigned long long received, answered_2xx, answered_503, bytes;
	double first_2xx, last_2xx; /* CLOCK_MONOTONIC seconds; 0 = none yet */
	struct event_base *base;
};

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void reply(struct evhttp_request *req, int code, const char *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	evhttp_send_reply(req, code, NULL, NULL);
}

static void on_ceiling(struct evhttp_request *req, void *arg)
{
	(void)arg;
	reply(req, 200, "{}");
}

static void reply_count(struct sink *s, struct evhttp_request *req)
{
	char buf[512];

	snprintf(buf, sizeof(buf),
		 "{\"received\": %llu, \"answered_2xx\": %llu, \"answered_503\": %llu, \"bytes\": %llu, "
		 "\"first_2xx_at\": %.6f, \"last_2xx_at\": %.6f, \"now\": %.6f, \"down\": %s}",
		 s->received, s->answered_2xx, s->answered_503, s->bytes, s->first_2xx, s->last_2xx, mono_now(),
		 s->down ? "true" : "false");
	reply(req, 200, buf);
}

/* Control endpoints under /__; returns false when the path is not one. */
static bool control(struct sink *s, struct evhttp_request *req, const char *path)
{
	if (strcmp(path, "/__count") == 0) {
		reply_count(s, req);
	} else if (strcmp(path, "/__down") == 0) {
		s->down = true;
		reply(req, 200, "{\"down\": true}");
	} else if (strcmp(path, "/__up") == 0) {
		s->down = false;
		s->down_until = 0;
		reply(req, 200, "{\"down\": false}");
	} else if (strcmp(path, "/__reset") == 0) {
		s->received = s->answered_2xx = s->answered_503 = s->bytes = 0;
		s->first_2xx = s->last_2xx = 0;
		reply(req, 200, "{}");
	} else {
		return false;
	}
	return true;
}

static bool is_down(const struct sink *s)
{
	if (s->down || (long long)s->received <= s->down_until)
		return true;
	return s->down_file != NULL && access(s->down_file, F_OK) == 0;
}

static void on_upstream(struct evhttp_request *req, void *arg)
{
	struct sink *s = arg;
	const char *uri = evhttp_request_get_uri(req);
	char body[64];
	double now;

	if (strncmp(uri, "/__", 3) == 0 && control(s, req, uri))
		return;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST || strstr(uri, "/api/") == NULL) {
		reply(req, 404, "{\"detail\": \"not found\"}");
		return;
	}
	s->received++;
	s->bytes += evbuffer_get_length(evhttp_request_get_input_buffer(req));
	if (is_down(s)) {
		s->answered_503++;
		reply(req, 503, "{\"detail\": \"bench_sink is down\"}");
		return;
	}
	now = mono_now();
	if (s->first_2xx == 0)
		s->first_2xx = now;
	s->last_2xx = now;
	s->answered_2xx++;
	snprintf(body, sizeof(body), "{\"id\": \"%032llx\"}", s->answered_2xx);
	reply(req, 200, body);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(arg);
}

static int parse_args(int argc, char **argv, struct sink *s, const char **addr, int *port)
{
	const char *mode = NULL;

	*port = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--down") == 0) {
			s->down = true;
			continue;
		}
		if (v == NULL)
			return -1;
		i++;
		if (strcmp(a, "--port") == 0)
			*port = atoi(v);
		else if (strcmp(a, "--address") == 0)
			*addr = v;
		else if (strcmp(a, "--mode") == 0)
			mode = v;
		else if (strcmp(a, "--down-until-count") == 0)
			s->down_until = atoll(v);
		else if (strcmp(a, "--down-file") == 0)
			s->down_file = v;
		else
			return -1;
	}
	if (mode == NULL || *port < 0 || *port > 65535)
		return -1;
	if (strcmp(mode, "ceiling") == 0)
		s->mode = MODE_CEILING;
	else if (strcmp(mode, "upstream") == 0)
		s->mode = MODE_UPSTREAM;
	else
		return -1;
	return 0;
}

static int bound_port(struct evhttp_bound_socket *bound)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int main(int argc, char **argv)
{
	static struct sink s;
	const char *addr = "127.0.0.1";
	struct evhttp *http = NULL;
	struct evhttp_bound_socket *bound;
	struct event *sigterm = NULL, *sigint = NULL;
	int port, rc = 1;

	if (parse_args(argc, argv, &s, &addr, &port) != 0) {
		fputs(USAGE, stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	s.base = event_base_new();
	if (s.base == NULL || (http = evhttp_new(s.base)) == NULL)
		goto out;
	evhttp_set_timeout(http, 120);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
				   EVHTTP_REQ_OPTIONS | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, s.mode == MODE_CEILING ? on_ceiling : on_upstream, &s);
	bound = evhttp_bind_socket_with_handle(http, addr, (ev_uint16_t)port);
	if (bound == NULL) {
		fprintf(stderr, "bench_sink: cannot listen on %s:%d\n", addr, port);
		goto out;
	}
	sigterm = evsignal_new(s.base, SIGTERM, on_signal, s.base);
	sigint = evsignal_new(s.base, SIGINT, on_signal, s.base);
	if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) != 0 || evsignal_add(sigint, NULL) != 0)
		goto out;
	printf("READY %d\n", bound_port(bound));
	fflush(stdout);
	rc = event_base_dispatch(s.base) < 0 ? 1 : 0;
out:
	if (sigterm != NULL)
		event_free(sigterm);
	if (sigint != NULL)
		event_free(sigint);
	if (http != NULL)
		evhttp_free(http);
	if (s.base != NULL)
		event_base_free(s.base);
	return rc;
}
