/* httpd.c - the listening evhttp server and the handler chain. */
#include "httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "clock.h"
#include "endpoint.h"
#include "log.h"

#define HANDLERS_MAX 4

struct httpd {
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct {
		httpd_handler fn;
		void *arg;
	} chain[HANDLERS_MAX];
	size_t nchain;
	const char *name;
};

void httpd_reply_json(struct evhttp_request *req, int code, const char *text)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *body = text != NULL ? text : "{}";

	evhttp_add_header(h, "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	evhttp_send_reply(req, code, NULL, NULL);
}

void httpd_reply_error(struct evhttp_request *req, int code, const char *detail, int retry_after)
{
	json_t *o = json_pack("{s:s}", "detail", detail);
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	char ra[16];

	if (retry_after > 0) {
		snprintf(ra, sizeof(ra), "%d", retry_after);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
	}
	httpd_reply_json(req, code, text != NULL ? text : "{\"detail\":\"error\"}");
	free(text);
	json_decref(o);
}

/* The path of the request target, runs of '/' collapsed. Read from the raw target: evhttp's URI
 * parser takes "//api/1/store/" for an authority ("api") and a path. */
static void request_path(struct evhttp_request *req, char *path, size_t len)
{
	const char *uri = evhttp_request_get_uri(req);
	char raw[ENDPOINT_PATH_MAX];
	size_t n;

	if (uri == NULL)
		uri = "/";
	if (strncmp(uri, "http://", 7) == 0 || strncmp(uri, "https://", 8) == 0) {
		/* An absolute target: the path starts after the authority. */
		const char *p = strchr(uri + (uri[4] == 's' ? 8 : 7), '/');

		uri = p != NULL ? p : "/";
	}
	n = strcspn(uri, "?#");
	snprintf(raw, sizeof(raw), "%.*s", (int)(n < sizeof(raw) ? n : sizeof(raw) - 1), uri);
	endpoint_normalise(raw, path, len);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct httpd *h = arg;
	char path[ENDPOINT_PATH_MAX];

	request_path(req, path, sizeof(path));
	for (size_t i = 0; i < h->nchain; i++)
		if (h->chain[i].fn(h->chain[i].arg, req, path))
			return;
	httpd_reply_error(req, 404, "not found", 0);
}

struct httpd *httpd_new(struct event_base *base, const struct httpd_params *p)
{
	struct httpd *h = calloc(1, sizeof(*h));
	struct timeval tv = clock_timeval(p->client_timeout);

	if (h == NULL || (h->http = evhttp_new(base)) == NULL)
		goto fail;
	h->name = p->name != NULL ? p->name : "http";
	evhttp_set_max_body_size(h->http, (ev_ssize_t)p->max_body);
	evhttp_set_max_headers_size(h->http, (ev_ssize_t)p->max_headers);
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE);
	evhttp_set_timeout_tv(h->http, &tv);
	/* Empty success answers (security, nel, attachments, cron) are not HTML. */
	evhttp_set_default_content_type(h->http, "text/plain; charset=utf-8");
	evhttp_set_gencb(h->http, on_request, h);
	h->bound = evhttp_bind_socket_with_handle(h->http, p->address, (ev_uint16_t)p->port);
	if (h->bound == NULL) {
		log_error("%s: cannot listen on %s:%d", h->name, p->address, p->port);
		goto fail;
	}
	log_info("%s: listening on %s:%d", h->name, p->address, p->port);
	return h;
fail:
	httpd_free(h);
	return NULL;
}

void httpd_free(struct httpd *h)
{
	if (h == NULL)
		return;
	if (h->http != NULL)
		evhttp_free(h->http);
	free(h);
}

int httpd_add_handler(struct httpd *h, httpd_handler fn, void *arg)
{
	if (h->nchain == HANDLERS_MAX)
		return -1;
	h->chain[h->nchain].fn = fn;
	h->chain[h->nchain++].arg = arg;
	return 0;
}

void httpd_stop_accepting(struct httpd *h)
{
	if (h->bound != NULL) {
		evhttp_del_accept_socket(h->http, h->bound);
		h->bound = NULL;
	}
}
