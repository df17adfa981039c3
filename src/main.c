/* main.c - command line, start-up order, signals as loop events, graceful shutdown. */
#include <getopt.h>
#include <malloc.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "admin.h"
#include "clock.h"
#include "budget.h"
#include "config.h"
#include "deadtool.h"
#include "forward.h"
#include "httpd.h"
#include "ingest.h"
#include "legacyconf.h"
#include "legacytool.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "route.h"
#include "stats.h"
#include "throttle.h"

struct shutdown {
	struct relay *r;
	struct event *sigterm, *sigint, *timer, *poll;
	int signals;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sentryq [-c FILE] [-t] [-V] [-h]\n"
		"       sentryq [-c FILE] dead list [--json] | dead replay (--all | ID...) | dead purge (--all | ID...)\n"
		"       sentryq [-c FILE] legacy drain --from HOST:PORT[/DB] [--dry-run] [--list NAME] [--body-prefix PREFIX]\n"
		"       sentryq import-legacy-config OLD.py > sentryq.conf\n"
		"  -c FILE  configuration file (default: $SENTRYQ_CONFIG)\n"
		"  -t       check the configuration and exit (0 valid, 1 invalid)\n"
		"  -V       print the version and exit\n"
		"  -h       this help\n"
		"  dead list [--json]          list the dead letters (one line each, or a JSON array)\n"
		"  dead replay (--all | ID...) re-queue dead letters to their route's stream\n"
		"  dead purge (--all | ID...)  delete dead letters\n"
		"  legacy drain --from ...     move the old pipeline's Redis queue into sentryq's (--dry-run: count only)\n"
		"  import-legacy-config OLD.py convert the legacy Python forwarder's config (read, never run)\n"
		"Runs in the foreground and logs to stderr. SIGTERM/SIGINT drain and exit; a second one exits at once.\n");
}

static void on_drained(void *arg)
{
	struct shutdown *s = arg;

	if (queue_writes_in_flight(s->r->queue) > 0 || queue_buffered(s->r->queue, NULL) > 0)
		return;  /* the poll below comes back when the last Redis write is answered */
	log_info("shutdown: drained, exiting");
	event_base_loopexit(s->r->base, NULL);
}

/* Poll until ingest writes are answered and the memory buffer is in Redis, then let forward
 * report when its requests and acks are done. */
static void drain_poll(evutil_socket_t fd, short what, void *arg)
{
	struct shutdown *s = arg;

	(void)fd;
	(void)what;
	if (queue_writes_in_flight(s->r->queue) == 0 && queue_buffered(s->r->queue, NULL) == 0)
		forward_drain(s->r->forward, on_drained, s);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct shutdown *s = arg;

	(void)fd;
	(void)what;
	log_warn("shutdown: %.1fs passed with %d forwards in flight; they stay pending in Redis",
		 s->r->cfg->shutdown_timeout, forward_in_flight(s->r->forward));
	event_base_loopexit(s->r->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct shutdown *s = arg;
	struct timeval tv = clock_timeval(s->r->cfg->shutdown_timeout), poll = clock_timeval(0.05);

	(void)what;
	if (s->signals++ > 0) {
		log_warn("shutdown: second signal, exiting now");
		event_base_loopbreak(s->r->base);
		return;
	}
	log_info("shutdown: signal %d, draining (up to %.1fs)", (int)sig, s->r->cfg->shutdown_timeout);
	s->r->stopping = true;
	httpd_stop_accepting(s->r->httpd);
	evtimer_add(s->timer, &tv);
	evtimer_add(s->poll, &poll);
}

/* *sub: index in argv of the `dead` or `legacy` subcommand, 0 when the relay is to run. */
static int parse_args(int argc, char **argv, const char **file, bool *check, int *sub)
{
	int opt;

	*file = getenv("SENTRYQ_CONFIG");
	*check = false;
	*sub = 0;
	/* '+': stop at the first operand, so the subcommand's own options ("--json") reach it untouched. */
	while ((opt = getopt(argc, argv, "+c:tVh")) != -1) {
		switch (opt) {
		case 'c': *file = optarg; break;
		case 't': *check = true; break;
		case 'V': printf("sentryq %s\n", SENTRYQ_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc && (strcmp(argv[optind], "dead") == 0 || strcmp(argv[optind], "legacy") == 0))
		*sub = optind;
	if ((optind < argc && *sub == 0) || *file == NULL) {
		if (*file == NULL)
			fprintf(stderr, "sentryq: no configuration file: use -c FILE or set SENTRYQ_CONFIG\n");
		usage(stderr);
		return -1;
	}
	return 0;
}

/* The queue reports upwards; main passes it on to the forwarder (created after the queue). */
static void on_queue_ready(void *arg)
{
	struct relay *r = arg;

	if (r->forward != NULL)
		forward_resume(r->forward);
}

static void on_queue_arrival(void *arg, const char *stream)
{
	struct relay *r = arg;

	if (r->forward != NULL)
		forward_arrived(r->forward, stream);
}

/* Client connections the fd limit allows: the soft limit is raised to the hard one first, then
 * room is kept for Redis, every upstream connection, and a margin for files and DNS. */
static int connection_cap(const struct config *cfg)
{
	struct rlimit rl;
	long room = 1024, upstream = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		room = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000 ? 1000000 : (long)rl.rlim_cur;
	}
	for (size_t i = 0; i < cfg->nupstreams; i++)
		upstream += cfg->upstreams[i].max_connections;
	room -= 64 + upstream;
	if (room < 16)
		room = 16;
	if (cfg->listen_max_connections > 0 && cfg->listen_max_connections <= room)
		return cfg->listen_max_connections;
	if (cfg->listen_max_connections > room)
		log_warn("listen.max_connections %d is above what the fd limit leaves (%ld): using %ld",
			 cfg->listen_max_connections, room, room);
	return (int)room;
}

/* One listener: the admin endpoints first, then ingest, which answers everything else. */
static int start_http(struct relay *r)
{
	const struct config *cfg = r->cfg;
	struct httpd_params hp = {
		.address = cfg->listen_address, .port = cfg->listen_port, .max_body = cfg->max_body_size,
		.max_head = 64 * 1024, .client_timeout = cfg->client_timeout, .head_timeout = cfg->head_timeout,
		.min_body_rate = cfg->min_body_rate, .max_connections = connection_cap(cfg),
		.budget = r->budget, .name = "ingest",
	};

	if ((r->admin = admin_new(r)) == NULL || (r->ingest = ingest_new(r)) == NULL ||
	    (r->httpd = httpd_new(r->base, &hp)) == NULL)
		return -1;
	httpd_add_handler(r->httpd, admin_handle, r->admin);
	httpd_add_handler(r->httpd, ingest_handle, r->ingest);
	return 0;
}

static int start(struct relay *r)
{
	struct event_config *ec = event_config_new();

	/* The changelist folds the many add/del pairs of one loop iteration into one epoll_ctl each:
	 * it cut epoll_ctl calls per event by about 40 % under wrk. */
	if (ec != NULL) {
		event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		r->base = event_base_new_with_config(ec);
		event_config_free(ec);
	}
	if (r->base == NULL)
		r->base = event_base_new();
	/* Three priorities, default the middle one (ingest, Redis); forwarding runs at the lowest so
	 * that under saturation SDKs are answered first and the queue absorbs the difference. */
	if (r->base != NULL && event_base_priority_init(r->base, RELAY_PRIORITIES) != 0)
		log_warn("cannot set event priorities; forwarding competes with ingest");
	r->dns = r->base ? evdns_base_new(r->base, EVDNS_BASE_INITIALIZE_NAMESERVERS) : NULL;
	r->stats = stats_new();
	r->routes = route_new(r->cfg);
	r->throttle = throttle_new();
	r->budget = budget_new(r->cfg->max_body_memory, r->cfg->limit_event);
	if (r->base == NULL || r->dns == NULL || r->stats == NULL || r->routes == NULL || r->throttle == NULL ||
	    r->budget == NULL)
		return -1;
	r->started = time(NULL);
	r->queue = queue_new(r->base, r->cfg, &(struct queue_hooks){ on_queue_ready, on_queue_arrival, r });
	if (r->queue == NULL || (r->forward = forward_new(r)) == NULL)
		return -1;
	return start_http(r);
}

static void stop(struct relay *r)
{
	/* Queue first: its failed callbacks still reach a live forward and ingest. */
	queue_free(r->queue);
	forward_free(r->forward);
	httpd_free(r->httpd);
	ingest_free(r->ingest);
	admin_free(r->admin);
	throttle_free(r->throttle);
	route_free(r->routes);
	stats_free(r->stats);
	if (r->dns != NULL)
		evdns_base_free(r->dns, 0);
	if (r->base != NULL)
		event_base_free(r->base);
	budget_free(r->budget);  /* last: bodies libevent frees with the base give back to it */
}

int main(int argc, char **argv)
{
	struct relay r;
	struct shutdown s;
	const char *file;
	char err[1024];
	bool check;
	int rc = 1, sub;

	memset(&r, 0, sizeof(r));
	memset(&s, 0, sizeof(s));
	if (argc > 1 && strcmp(argv[1], "import-legacy-config") == 0) /* needs no configuration */
		return (int)legacyconf_run(argc - 1, argv + 1, stdout, stderr);
	if (parse_args(argc, argv, &file, &check, &sub) != 0)
		return 2;
	r.cfg = config_load(file, err, sizeof(err));
	if (r.cfg == NULL) {
		fprintf(stderr, "sentryq: %s\n", err);
		return 1;
	}
	if (check) {
		printf("sentryq: %s: configuration ok (%zu upstreams)\n", file, r.cfg->nupstreams);
		config_free(r.cfg);
		return 0;
	}
	if (sub > 0) {
		rc = strcmp(argv[sub], "dead") == 0 ? deadtool_run(r.cfg, argc - sub, argv + sub)
						    : (int)legacytool_run(r.cfg, argc - sub, argv + sub);
		config_free(r.cfg);
		return rc;
	}
	log_set_level(r.cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	/* A fixed threshold (glibc's moves up to 32 MiB as blocks are freed): every allocation of a
	 * megabyte or more, a large body above all, is its own mapping and goes back to the system
	 * when freed, instead of staying in the heap as resident memory. */
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	if (start(&r) != 0)
		goto out;
	s.r = &r;
	s.sigterm = evsignal_new(r.base, SIGTERM, on_signal, &s);
	s.sigint = evsignal_new(r.base, SIGINT, on_signal, &s);
	s.timer = evtimer_new(r.base, on_timeout, &s);
	s.poll = event_new(r.base, -1, EV_PERSIST, drain_poll, &s);
	if (s.sigterm == NULL || s.sigint == NULL || s.timer == NULL || s.poll == NULL)
		goto out;
	evsignal_add(s.sigterm, NULL);
	evsignal_add(s.sigint, NULL);
	log_info("sentryq %s started (config %s, %zu upstreams)", SENTRYQ_VERSION, file, r.cfg->nupstreams);
	rc = event_base_dispatch(r.base) < 0 ? 1 : 0;
out:
	if (s.sigterm) event_free(s.sigterm);
	if (s.sigint) event_free(s.sigint);
	if (s.timer) event_free(s.timer);
	if (s.poll) event_free(s.poll);
	stop(&r);
	config_free(r.cfg);
	return rc;
}
