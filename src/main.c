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
#include "budget.h"
#include "clock.h"
#include "config.h"
#include "deadtool.h"
#include "forward.h"
#include "generation.h"
#include "httpd.h"
#include "ingest.h"
#include "legacyconf.h"
#include "legacytool.h"
#include "log.h"
#include "queue.h"
#include "relay.h"
#include "report.h"
#include "route.h"
#include "stats.h"
#include "telemetry.h"
#include "throttle.h"

#define INTERNAL_MAX_CONNECTIONS 64   /* the internal listener (metrics.port): scrapers and probes */

#define RELOAD_KEYS_SHOWN 64   /* restart-only keys named per reload */

static void config_warnings(const struct config *cfg, bool cli);

struct shutdown {
	struct relay *r;
	struct event *sigterm, *sigint, *sighup, *timer, *poll;
	int signals;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sentryq [-c FILE] [-t [--print]] [-V] [-h]\n"
		"       sentryq [-c FILE] dead list [--json] [--route UP/PROJECT] | dead replay (--all [--route UP/PROJECT] | ID...) |\n"
		"                         dead purge (--all [--route UP/PROJECT] | ID...)\n"
		"       sentryq [-c FILE] legacy drain --from HOST:PORT[/DB] [--dry-run] [--list NAME] [--body-prefix PREFIX]\n"
		"       sentryq import-legacy-config OLD.py > sentryq.conf\n"
		"  -c FILE  configuration file (default: $SENTRYQ_CONFIG)\n"
		"  -t       check the configuration and exit (0 valid, 1 invalid)\n"
		"  --print  with -t: print the configuration in force (environment applied, secrets masked)\n"
		"  -V       print the version and exit\n"
		"  -h       this help\n"
		"  dead list [--json]          list the dead letters (one line each, or a JSON array)\n"
		"  dead replay (--all | ID...) re-queue dead letters to their route's stream\n"
		"  dead purge (--all | ID...)  delete dead letters (and their large bodies)\n"
		"  --route UPSTREAM/PROJECT    with dead list, replay --all, purge --all: one destination's only\n"
		"  legacy drain --from ...     move the old pipeline's Redis queue into sentryq's (--dry-run: count only)\n"
		"  import-legacy-config OLD.py convert the legacy Python forwarder's config (read, never run)\n"
		"Runs in the foreground and logs to stderr. SIGTERM/SIGINT drain and exit; a second one exits at once.\n"
		"SIGHUP reloads the configuration file (a bad one is refused and the running one stays).\n"
		"Every key outside the upstreams list may be set by SENTRYQ_<SECTION>_<KEY> (SENTRYQ_LISTEN_PORT=9100).\n");
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
	if (queue_writes_in_flight(s->r->queue) > 0 || queue_buffered(s->r->queue, NULL) > 0)
		return;
	if (s->r->forward != NULL)
		forward_drain(s->r->forward, on_drained, s);
	else
		on_drained(s);  /* role ingest: nothing is forwarded here */
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
	/* The listener stays open while draining: health checks answer "not ready" (so a load balancer
	 * sees the drain), ingest answers 503 + Retry-After; it closes when the process exits. */
	log_info("shutdown: signal %d, draining (up to %.1fs); ready answers 503", (int)sig, s->r->cfg->shutdown_timeout);
	/* Sharing the port (listen.reuse_port): close ours, so the kernel sends new connections to the
	 * other processes; the connections open here are answered 503 until they close. */
	if (s->r->cfg->listen_reuse_port && s->r->httpd != NULL)
		httpd_stop_accepting(s->r->httpd);
	s->r->stopping = true;
	evtimer_add(s->timer, &tv);
	evtimer_add(s->poll, &poll);
}

/* What cannot change while running is named, and keeps its running value. */
static int keep_restart_keys(struct relay *r, struct config *cfg)
{
	const char *keys[RELOAD_KEYS_SHOWN];
	size_t n = generation_restart_keys(r->cfg, cfg, keys, RELOAD_KEYS_SHOWN);

	for (size_t i = 0; i < n && i < RELOAD_KEYS_SHOWN; i++)
		log_kv_warn(LOG_FIELDS(LOG_STR("key", keys[i])),
			    "reload: %s changed: it needs a restart; the running value stays in effect", keys[i]);
	return generation_keep_restart(cfg, r->cfg) == GENERATION_KEEP_OK ? 0 : -1;
}

static void reload_refused(struct relay *r, const char *why)
{
	stats_add(r->stats, STATS_RELOAD_FAILURES, 1);
	log_kv_error(LOG_FIELDS(LOG_STR("file", r->cfg->file)), "reload: refused, the running configuration stays: %s",
		     why);
}

static void reload_applied(struct relay *r, const struct generation_diff *d)
{
	size_t retired = r->forward != NULL ? forward_retired(r->forward) : 0;

	log_set_level(r->cfg->log_level);
	log_set_format(r->cfg->log_format);
	report_reload(r->report);
	config_warnings(r->cfg, false);
	stats_add(r->stats, STATS_RELOADS, 1);
	log_kv_info(LOG_FIELDS(LOG_INT("generation", generation_id(r->gen)), LOG_INT("routes_added", d->added),
			       LOG_INT("routes_removed", d->removed), LOG_INT("routes_changed", d->changed),
			       LOG_INT("upstreams_added", d->upstreams_added), LOG_INT("upstreams_removed", d->upstreams_removed),
			       LOG_INT("upstreams_changed", d->upstreams_changed), LOG_INT("retired", retired)),
		    "reload: %s applied: routes %zu added, %zu removed, %zu changed, %zu unchanged; upstreams %zu added, "
		    "%zu removed, %zu changed; %zu removed routes still being emptied", r->cfg->file, d->added, d->removed,
		    d->changed, d->kept, d->upstreams_added, d->upstreams_removed, d->upstreams_changed, retired);
}

/* SIGHUP: the file again, checked as -t checks it (environment included); the queue gets the new
 * streams (their groups first), the forwarder the new routes, ingest the new tables. */
static void reload(struct relay *r)
{
	char err[1024];
	struct config *cfg = config_load(r->cfg->file, err, sizeof(err));
	struct generation *g;
	struct generation_diff d;

	if (cfg == NULL)
		return reload_refused(r, err);
	if (keep_restart_keys(r, cfg) != 0 || (g = generation_new(cfg, generation_id(r->gen) + 1)) == NULL) {
		config_free(cfg);
		return reload_refused(r, "out of memory");
	}
	generation_diff(r->cfg, cfg, &d);
	if (queue_reconfigure(r->queue, cfg) != QUEUE_RECONFIGURED ||
	    (r->forward != NULL && forward_reload(r->forward, g) != 0)) {  /* role ingest: no forwarder */
		generation_drop(g);
		return reload_refused(r, "out of memory");
	}
	generation_follow(g, r->gen);  /* ingest requests of the old one finish with it */
	generation_drop(r->gen);
	r->gen = g;
	generation_settled(g);         /* let go at once when none is in flight */
	r->cfg = cfg;
	reload_applied(r, &d);
}

static void on_hangup(evutil_socket_t sig, short what, void *arg)
{
	struct shutdown *s = arg;

	(void)sig;
	(void)what;
	if (s->r->stopping) {
		log_info("reload: ignored while shutting down");
		return;
	}
	reload(s->r);
}

/* What the command line asks. sub: index in argv of the `dead` or `legacy` subcommand, 0 when the
 * relay is to run. */
struct args {
	const char *file;
	bool check, print;
	int sub;
};

static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option longopts[] = { { "print", no_argument, NULL, 'P' }, { NULL, 0, NULL, 0 } };
	const char **file = &a->file;
	int opt, *sub = &a->sub;

	memset(a, 0, sizeof(*a));
	*file = getenv("SENTRYQ_CONFIG");
	/* '+': stop at the first operand, so the subcommand's own options ("--json") reach it untouched. */
	while ((opt = getopt_long(argc, argv, "+c:tVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': *file = optarg; break;
		case 't': a->check = true; break;
		case 'P': a->check = a->print = true; break;
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
	room -= 64 + upstream + (cfg->metrics_port > 0 ? INTERNAL_MAX_CONNECTIONS : 0);
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
/* The internal listener: the admin endpoints only, for scrapers and probes. */
static int start_internal(struct relay *r)
{
	const struct config *cfg = r->cfg;
	struct httpd_params hp = {
		.address = cfg->metrics_address, .port = cfg->metrics_port, .max_body = 65536, .max_head = 16 * 1024,
		.client_timeout = cfg->client_timeout, .head_timeout = cfg->head_timeout,
		.min_body_rate = cfg->min_body_rate, .max_connections = INTERNAL_MAX_CONNECTIONS,
		.budget = NULL, .name = "metrics",  /* GETs only: no body is ever held */
	};

	if ((r->metrics_httpd = httpd_new(r->base, &hp)) == NULL)
		return -1;
	httpd_add_handler(r->metrics_httpd, admin_handle_internal, r->admin);
	return 0;
}

static int start_http(struct relay *r)
{
	const struct config *cfg = r->cfg;
	struct httpd_params hp = {
		.address = cfg->listen_address, .port = cfg->listen_port, .max_body = cfg->max_body_size,
		.max_head = 64 * 1024, .client_timeout = cfg->client_timeout, .head_timeout = cfg->head_timeout,
		.min_body_rate = cfg->min_body_rate, .max_connections = connection_cap(cfg),
		.budget = r->budget, .name = "ingest", .reuse_port = cfg->listen_reuse_port,
	};

	if ((r->telemetry = telemetry_new(r)) == NULL || (r->admin = admin_new(r)) == NULL)
		return -1;
	if (cfg->role == CONFIG_ROLE_FORWARD)  /* no SDK listener: the admin endpoints on metrics.port */
		return start_internal(r);
	if ((r->ingest = ingest_new(r)) == NULL || (r->httpd = httpd_new(r->base, &hp)) == NULL)
		return -1;
	httpd_add_handler(r->httpd, admin_handle, r->admin);
	httpd_add_handler(r->httpd, ingest_handle, r->ingest);
	httpd_set_observer(r->httpd, admin_observe, r->admin);
	return cfg->metrics_port > 0 ? start_internal(r) : 0;
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
	if ((r->gen = generation_new(r->cfg, 1)) == NULL)
		return -1;
	r->first = generation_hold(r->gen);
	r->throttle = throttle_new();
	r->budget = budget_new(r->cfg->max_body_memory, r->cfg->limit_event);
	if (r->base == NULL || r->dns == NULL || r->stats == NULL || r->throttle == NULL ||
	    r->budget == NULL)
		return -1;
	r->started = time(NULL);
	r->queue = queue_new(r->base, r->cfg, &(struct queue_hooks){ on_queue_ready, on_queue_arrival, r });
	if (r->queue == NULL || start_http(r) != 0)
		return -1;
	/* role ingest: no forwarder, so no XREADGROUP and no upstream connection. */
	if (r->cfg->role != CONFIG_ROLE_INGEST && (r->forward = forward_new(r)) == NULL)
		return -1;
	return (r->report = report_new(r)) != NULL ? 0 : -1;
}

static void stop(struct relay *r)
{
	/* Queue first: its failed callbacks still reach a live forward and ingest. */
	queue_free(r->queue);
	forward_free(r->forward);
	httpd_free(r->httpd);
	httpd_free(r->metrics_httpd);
	ingest_free(r->ingest);
	admin_free(r->admin);
	telemetry_free(r->telemetry);
	report_free(r->report);
	throttle_free(r->throttle);
	stats_free(r->stats);
	if (r->gen != NULL) {  /* the config goes with the last generation: main does not free it */
		generation_drop(r->gen);
		generation_drop(r->first);
		r->cfg = NULL;
	}
	if (r->dns != NULL)
		evdns_base_free(r->dns, 0);
	if (r->base != NULL)
		event_base_free(r->base);
	budget_free(r->budget);  /* last: bodies libevent frees with the base give back to it */
}

/* What an operator should know about the file itself: said at start and by -t. */
static void config_warnings(const struct config *cfg, bool cli)
{
	const char *what[2] = { NULL, NULL };

	if (config_permissions(cfg->file) == CONFIG_PERM_OTHERS)
		what[0] = "is readable by every user: it holds every project's Sentry secret (chmod o-r)";
	if (cfg->log_level_deprecated != NULL)
		what[1] = "sets the deprecated top-level log_level: write log = { level = ...; } instead";
	for (size_t i = 0; i < 2; i++) {
		if (what[i] != NULL && cli)
			fprintf(stderr, "sentryq: warning: %s %s\n", cfg->file, what[i]);
		else if (what[i] != NULL)
			log_kv_warn(LOG_FIELDS(LOG_STR("file", cfg->file)), "config: %s %s", cfg->file, what[i]);
	}
}

static int check_config(const struct config *cfg, const struct args *a)
{
	config_warnings(cfg, true);
	if (a->print)
		return config_print(cfg, stdout) == CONFIG_PRINT_OK ? 0 : 1;
	printf("sentryq: %s: configuration ok (%zu upstreams)\n", a->file, cfg->nupstreams);
	return 0;
}

/* libevent's own messages go through the log, so a JSON log stays JSON. */
static void on_libevent_log(int severity, const char *msg)
{
	enum log_level lvl = severity == EVENT_LOG_ERR ? LOG_ERROR : severity == EVENT_LOG_WARN ? LOG_WARN
							: severity == EVENT_LOG_MSG ? LOG_INFO : LOG_DEBUG;

	if (lvl >= log_settings.threshold)
		log_kv(lvl, LOG_FIELDS(LOG_STR("source", "libevent")), "libevent: %s", msg);
}

/* The relay itself: start, signals as loop events, run until drained or told twice. */
static int run(struct relay *r)
{
	struct shutdown s;
	int rc = 1;

	memset(&s, 0, sizeof(s));
	log_set_level(r->cfg->log_level);
	log_set_format(r->cfg->log_format);
	event_set_log_callback(on_libevent_log);
	config_warnings(r->cfg, false);
	signal(SIGPIPE, SIG_IGN);
	/* A fixed threshold (glibc's moves up to 32 MiB as blocks are freed): every allocation of a
	 * megabyte or more, a large body above all, is its own mapping and goes back to the system
	 * when freed, instead of staying in the heap as resident memory. */
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	if (start(r) != 0)
		goto out;
	s.r = r;
	s.sigterm = evsignal_new(r->base, SIGTERM, on_signal, &s);
	s.sigint = evsignal_new(r->base, SIGINT, on_signal, &s);
	s.sighup = evsignal_new(r->base, SIGHUP, on_hangup, &s);
	s.timer = evtimer_new(r->base, on_timeout, &s);
	s.poll = event_new(r->base, -1, EV_PERSIST, drain_poll, &s);
	if (s.sigterm == NULL || s.sigint == NULL || s.sighup == NULL || s.timer == NULL || s.poll == NULL)
		goto out;
	evsignal_add(s.sigterm, NULL);
	evsignal_add(s.sigint, NULL);
	evsignal_add(s.sighup, NULL);
	log_info("sentryq %s started (config %s, %zu upstreams, role %s, consumer %s)", SENTRYQ_VERSION, r->cfg->file,
		 r->cfg->nupstreams, config_role_name(r->cfg->role), queue_consumer(r->queue));
	rc = event_base_dispatch(r->base) < 0 ? 1 : 0;
out:
	if (s.sigterm) event_free(s.sigterm);
	if (s.sigint) event_free(s.sigint);
	if (s.sighup) event_free(s.sighup);
	if (s.timer) event_free(s.timer);
	if (s.poll) event_free(s.poll);
	stop(r);
	return rc;
}

int main(int argc, char **argv)
{
	struct relay r;
	struct args a;
	char err[1024];
	int rc;

	memset(&r, 0, sizeof(r));
	if (argc > 1 && strcmp(argv[1], "import-legacy-config") == 0) /* needs no configuration */
		return (int)legacyconf_run(argc - 1, argv + 1, stdout, stderr);
	if (parse_args(argc, argv, &a) != 0)
		return 2;
	r.cfg = config_load(a.file, err, sizeof(err));
	if (r.cfg == NULL) {
		fprintf(stderr, "sentryq: %s\n", err);
		return 1;
	}
	if (a.check)
		rc = check_config(r.cfg, &a);
	else if (a.sub > 0 && strcmp(argv[a.sub], "dead") == 0)
		rc = deadtool_run(r.cfg, argc - a.sub, argv + a.sub);
	else if (a.sub > 0)
		rc = (int)legacytool_run(r.cfg, argc - a.sub, argv + a.sub);
	else
		rc = run(&r);
	config_free(r.cfg);
	return rc;
}
