/* dg_driver_serial - serial field devices: chat script + dg_sproto engine
 * on a tty, on the gateway's libevent loop (issue 12). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dg_driver_serial.h"
#include "dg_fault.h"
#include "dg_log.h"
#include "dg_serial_line.h"
#include "dg_util.h"

#define MAX_STEPS 16
#define MAX_OPTS 32
#define RX_MAX 4096
#define STEP_MS 100          /* between DTR/RTS steps, as stm32flash -i */
#define BACKOFF_MAX_MS 8000

struct step {
	int dtr, rts;        /* 1 set, 0 clear, -1 leave */
};

struct model {
	char *name;
	const struct dg_sproto_ops *proto;
	dg_serial_opts line;
	char *version_send, *enter_send;
	size_t version_send_len, enter_send_len;
	regex_t version_re, enter_re, done_re, fail_re;
	int has_version_re, has_enter_re, has_done_re, has_fail_re;
	struct step entry[MAX_STEPS], exit[MAX_STEPS];
	int nentry, nexit;
	int chat_timeout_ms, retries, unit_timeout_ms, unit_retries, reopen_delay_ms;
	char *opts[MAX_OPTS + 1];
	int nopts;
};

struct sdev {
	struct sdev *next;
	char *id, *tty, *lock_dir;
	const struct model *m;
	dg_serial_opts o;
	int hotplug;
};

struct serial_driver {
	dg_driver base;
	struct event_base *evbase;
	struct model *models;
	size_t nmodels;
	struct sdev *devs;
	dg_delivery *running;
};

enum phase {
	PH_BACKOFF, PH_VERSION, PH_LINES_ENTER, PH_ENTER, PH_ENGINE,
	PH_LINES_EXIT, PH_INSTALL, PH_VERSION_AFTER
};

static const char *const phase_names[] = {
	"backoff", "version", "enter-lines", "enter", "transfer",
	"exit-lines", "install", "version after install"
};

struct dg_delivery {
	struct serial_driver *drv;
	dg_delivery *next;
	dg_delivery_events ev;
	void *arg;
	char *id, *tty, *lock_dir, *want_version, *name;
	const struct model *m;
	dg_serial_opts o;
	int is_pty;
	dg_serial_line *line;
	struct event *rd, *wr, *timer, *etimer, *deadline;
	uint8_t *out;
	size_t outlen, outcap;
	char rx[RX_MAX + 1];
	size_t rxlen;
	enum phase phase;
	int attempt, backoff_ms, step;
	uint8_t *img;
	size_t imglen;
	int mapped;
	uint8_t sha[32];
	dg_sproto_io io;        /* the engines keep a pointer to it */
	dg_sproto *eng;
	int eng_done, eng_ok;
	uint32_t eng_ext;
	char eng_detail[200];
	unsigned retransmits;
	int fault_passed, fault_hit;
	char version[64];
	char before[64];
};

/* ---- values: quoting, escapes ----------------------------------------- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Next "key=value" of s at *p: key into key, the unescaped value malloc'ed
 * into *val (NUL-terminated, its length in *vlen). 1 found, 0 end, -1
 * error (why). */
static int
next_kv(const char **p, char *key, size_t keylen, char **val, size_t *vlen,
    char *why, size_t whylen)
{
	const char *s = *p, *k;
	char *out;
	size_t n = 0, klen;
	int quoted = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return 0;
	k = s;
	while (*s && *s != '=' && *s != ' ' && *s != '\t')
		s++;
	klen = (size_t)(s - k);
	if (*s != '=' || klen == 0 || klen >= keylen) {
		snprintf(why, whylen, "'%.*s': expected key=value", (int)(klen ? klen : 1), k);
		return -1;
	}
	memcpy(key, k, klen);
	key[klen] = '\0';
	s++;
	if (!(out = malloc(strlen(s) + 1))) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	if (*s == '\'') {
		quoted = 1;
		s++;
	}
	for (;;) {
		if (!*s) {
			if (quoted) {
				free(out);
				snprintf(why, whylen, "%s: unterminated quote", key);
				return -1;
			}
			break;
		}
		if (quoted && *s == '\'') {
			s++;
			break;
		}
		if (!quoted && (*s == ' ' || *s == '\t'))
			break;
		if (*s == '\\' && s[1]) {
			int h1, h2;

			switch (s[1]) {
			case 'r': out[n++] = '\r'; s += 2; continue;
			case 'n': out[n++] = '\n'; s += 2; continue;
			case 't': out[n++] = '\t'; s += 2; continue;
			case '\\': out[n++] = '\\'; s += 2; continue;
			case '\'': out[n++] = '\''; s += 2; continue;
			case 'x':
				if ((h1 = hexval(s[2])) >= 0 && (h2 = hexval(s[3])) >= 0) {
					out[n++] = (char)(h1 * 16 + h2);
					s += 4;
					continue;
				}
				free(out);
				snprintf(why, whylen, "%s: \\x wants two hex digits", key);
				return -1;
			default:
				/* kept: a regular expression's own escape */
				out[n++] = *s++;
				continue;
			}
		}
		out[n++] = *s++;
	}
	out[n] = '\0';
	*val = out;
	*vlen = n;
	*p = s;
	return 1;
}

static int
parse_int(const char *key, const char *v, int64_t lo, int64_t hi, int *out, char *why, size_t whylen)
{
	int64_t x;

	if (dg_util_parse_i64(v, lo, hi, &x) != DG_OK) {
		snprintf(why, whylen, "%s: '%s' is not a number in %lld..%lld", key, v,
		    (long long)lo, (long long)hi);
		return -1;
	}
	*out = (int)x;
	return 0;
}

static int
parse_yesno(const char *key, const char *v, int *out, char *why, size_t whylen)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "1") == 0 || strcmp(v, "on") == 0)
		*out = 1;
	else if (strcmp(v, "no") == 0 || strcmp(v, "0") == 0 || strcmp(v, "off") == 0)
		*out = 0;
	else {
		snprintf(why, whylen, "%s: '%s' is not yes or no", key, v);
		return -1;
	}
	return 0;
}

/* A line setting (model or device): 1 taken, 0 not a line key, -1 bad. */
static int
line_key(dg_serial_opts *o, const char *k, const char *v, char *why, size_t whylen)
{
	int x;

	if (strcmp(k, "baud") == 0) {
		int64_t b;

		if (dg_util_parse_i64(v, 1, 100000000, &b) != DG_OK || dg_serial_baud_valid((long)b) != 0) {
			snprintf(why, whylen, "baud: unsupported baud rate '%s' (a standard rate 1200..921600)", v);
			return -1;
		}
		o->baud = (long)b;
	} else if (strcmp(k, "data-bits") == 0) {
		if (parse_int(k, v, 5, 8, &o->data_bits, why, whylen) != 0)
			return -1;
	} else if (strcmp(k, "stop-bits") == 0) {
		if (parse_int(k, v, 1, 2, &o->stop_bits, why, whylen) != 0)
			return -1;
	} else if (strcmp(k, "parity") == 0) {
		if (strcmp(v, "none") == 0 || strcmp(v, "n") == 0)
			o->parity = 'n';
		else if (strcmp(v, "even") == 0 || strcmp(v, "e") == 0)
			o->parity = 'e';
		else if (strcmp(v, "odd") == 0 || strcmp(v, "o") == 0)
			o->parity = 'o';
		else {
			snprintf(why, whylen, "parity: '%s' is not none, even or odd", v);
			return -1;
		}
	} else if (strcmp(k, "flow") == 0) {
		if (strcmp(v, "none") == 0)
			o->rtscts = 0;
		else if (strcmp(v, "rtscts") == 0)
			o->rtscts = 1;
		else {
			snprintf(why, whylen, "flow: '%s' is not none or rtscts", v);
			return -1;
		}
	} else if (strcmp(k, "rs485") == 0) {
		if (parse_yesno(k, v, &o->rs485, why, whylen) != 0)
			return -1;
	} else if (strcmp(k, "rs485-delay-before") == 0) {
		if (parse_int(k, v, 0, 1000, &x, why, whylen) != 0)
			return -1;
		o->rs485_delay_before_ms = x;
	} else if (strcmp(k, "rs485-delay-after") == 0) {
		if (parse_int(k, v, 0, 1000, &x, why, whylen) != 0)
			return -1;
		o->rs485_delay_after_ms = x;
	} else {
		return 0;
	}
	return 1;
}

/* "-rts,dtr&rts,,-dtr:rts": steps separated by ',' (STEP_MS apart), lines
 * in a step by '&', the exit sequence after ':'. */
static int
parse_steps(const char *v, struct model *m, char *why, size_t whylen)
{
	const char *s = v;
	struct step *st = m->entry;
	int *n = &m->nentry;

	*n = 0;
	m->nexit = 0;
	for (;;) {
		struct step cur = { -1, -1 };
		const char *e = s + strcspn(s, ",:");

		while (s < e) {
			const char *t = s + strcspn(s, "&,:");
			size_t len = (size_t)(t - s);
			int on = 1;

			if (len && *s == '-') {
				on = 0;
				s++;
				len--;
			}
			if (len == 3 && strncmp(s, "dtr", 3) == 0)
				cur.dtr = on;
			else if (len == 3 && strncmp(s, "rts", 3) == 0)
				cur.rts = on;
			else {
				snprintf(why, whylen, "enter-lines: '%.*s' is not [-]dtr or [-]rts", (int)len, s);
				return -1;
			}
			s = t;
			if (*s == '&')
				s++;
		}
		if (*n >= MAX_STEPS) {
			snprintf(why, whylen, "enter-lines: more than %d steps", MAX_STEPS);
			return -1;
		}
		st[(*n)++] = cur;
		if (!*e)
			break;
		if (*e == ':') {
			if (st == m->exit) {
				snprintf(why, whylen, "enter-lines: two ':'");
				return -1;
			}
			st = m->exit;
			n = &m->nexit;
		}
		s = e + 1;
	}
	return 0;
}

static int
set_regex(regex_t *re, int *has, const char *k, const char *v, int groups, char *why, size_t whylen)
{
	int rc;

	if (*has) {
		regfree(re);
		*has = 0;
	}
	if ((rc = regcomp(re, v, REG_EXTENDED | REG_NEWLINE)) != 0) {
		char msg[128];

		regerror(rc, re, msg, sizeof(msg));
		snprintf(why, whylen, "%s: the regular expression '%s' does not parse: %s", k, v, msg);
		return -1;
	}
	*has = 1;
	if (groups && re->re_nsub != 1) {
		snprintf(why, whylen, "%s: '%s' needs exactly one capture group (the version), has %zu",
		    k, v, re->re_nsub);
		return -1;
	}
	return 0;
}

static void
model_clear(struct model *m)
{
	int i;

	free(m->name);
	free(m->version_send);
	free(m->enter_send);
	if (m->has_version_re)
		regfree(&m->version_re);
	if (m->has_enter_re)
		regfree(&m->enter_re);
	if (m->has_done_re)
		regfree(&m->done_re);
	if (m->has_fail_re)
		regfree(&m->fail_re);
	for (i = 0; i < m->nopts; i++)
		free(m->opts[i]);
	memset(m, 0, sizeof(*m));
}

/* engines' io while their options are checked: nothing happens */
static int nop_write(void *a, const void *b, size_t n) { (void)a; (void)b; (void)n; return 0; }
static void nop_flush(void *a) { (void)a; }
static void nop_timer(void *a, int ms) { (void)a; (void)ms; }
static int nop_lines(void *a, int d, int r) { (void)a; (void)d; (void)r; return 0; }
static int nop_parity(void *a, dg_sproto_parity p) { (void)a; (void)p; return 0; }
static void nop_progress(void *a, uint64_t d, uint64_t t) { (void)a; (void)d; (void)t; }
static void nop_done(void *a, int ok, uint32_t e, const char *d, unsigned r)
{ (void)a; (void)ok; (void)e; (void)d; (void)r; }
static void nop_log(void *a, const char *m) { (void)a; (void)m; }

static int
model_parse(const char *value, struct model *m, char *why, size_t whylen)
{
	const char *p = value;
	char key[64], *v = NULL;
	size_t vlen, nlen;
	int r;

	memset(m, 0, sizeof(*m));
	dg_serial_opts_init(&m->line);
	m->chat_timeout_ms = 10000;
	m->retries = 3;
	m->reopen_delay_ms = 500;
	while (*p == ' ' || *p == '\t')
		p++;
	nlen = strcspn(p, " \t");
	if (nlen == 0 || memchr(p, '=', nlen)) {
		snprintf(why, whylen, "serial-model wants a NAME first, then key=value pairs");
		return -1;
	}
	if (!(m->name = strndup(p, nlen)))
		goto nomem;
	p += nlen;
	while ((r = next_kv(&p, key, sizeof(key), &v, &vlen, why, whylen)) == 1) {
		int lk = line_key(&m->line, key, v, why, whylen);

		if (lk < 0)
			goto fail;
		if (lk > 0) {
		} else if (strcmp(key, "protocol") == 0) {
			if (!(m->proto = dg_sproto_find(v))) {
				snprintf(why, whylen, "protocol: '%s' is not ymodem, stm32 or smp", v);
				goto fail;
			}
		} else if (strcmp(key, "version-send") == 0) {
			free(m->version_send);
			m->version_send = v;
			m->version_send_len = vlen;
			v = NULL;
		} else if (strcmp(key, "enter-send") == 0) {
			free(m->enter_send);
			m->enter_send = v;
			m->enter_send_len = vlen;
			v = NULL;
		} else if (strcmp(key, "version-expect") == 0) {
			if (set_regex(&m->version_re, &m->has_version_re, key, v, 1, why, whylen) != 0)
				goto fail;
		} else if (strcmp(key, "enter-expect") == 0) {
			if (set_regex(&m->enter_re, &m->has_enter_re, key, v, 0, why, whylen) != 0)
				goto fail;
		} else if (strcmp(key, "done-expect") == 0) {
			if (set_regex(&m->done_re, &m->has_done_re, key, v, 0, why, whylen) != 0)
				goto fail;
		} else if (strcmp(key, "fail-expect") == 0) {
			if (set_regex(&m->fail_re, &m->has_fail_re, key, v, 0, why, whylen) != 0)
				goto fail;
		} else if (strcmp(key, "enter-lines") == 0) {
			if (parse_steps(v, m, why, whylen) != 0)
				goto fail;
		} else if (strcmp(key, "chat-timeout") == 0) {
			if (parse_int(key, v, 1, 3600, &m->chat_timeout_ms, why, whylen) != 0)
				goto fail;
			m->chat_timeout_ms *= 1000;
		} else if (strcmp(key, "retries") == 0) {
			if (parse_int(key, v, 0, 100, &m->retries, why, whylen) != 0)
				goto fail;
		} else if (strcmp(key, "unit-timeout") == 0) {
			if (parse_int(key, v, 1, 600000, &m->unit_timeout_ms, why, whylen) != 0)
				goto fail;
		} else if (strcmp(key, "unit-retries") == 0) {
			if (parse_int(key, v, 1, 1000, &m->unit_retries, why, whylen) != 0)
				goto fail;
		} else if (strcmp(key, "reopen-delay") == 0) {
			if (parse_int(key, v, 1, 60000, &m->reopen_delay_ms, why, whylen) != 0)
				goto fail;
		} else if (strncmp(key, "opt.", 4) == 0 && key[4]) {
			char *kv;

			if (m->nopts >= MAX_OPTS) {
				snprintf(why, whylen, "more than %d opt. keys", MAX_OPTS);
				goto fail;
			}
			if (!(kv = malloc(strlen(key + 4) + 1 + vlen + 1)))
				goto nomem;
			sprintf(kv, "%s=%s", key + 4, v);
			m->opts[m->nopts++] = kv;
		} else {
			snprintf(why, whylen, "unknown serial-model key '%s'", key);
			goto fail;
		}
		free(v);
		v = NULL;
	}
	if (r < 0)
		goto fail;
	if (!m->proto) {
		snprintf(why, whylen, "model %s: protocol= (ymodem, stm32 or smp) is required", m->name);
		goto fail;
	}
	if (m->version_send && !m->has_version_re) {
		snprintf(why, whylen, "model %s: version-send without version-expect", m->name);
		goto fail;
	}
	if (m->has_enter_re && !m->enter_send && !m->nentry) {
		snprintf(why, whylen, "model %s: enter-expect without enter-send or enter-lines", m->name);
		goto fail;
	}
	if (dg_serial_opts_check(&m->line, why, whylen) != 0)
		goto fail;
	{
		/* the engine checks its options now, not at the first delivery */
		static const uint8_t one[1] = { 0 };
		static const uint8_t zsha[32];
		dg_sproto_io io = { NULL, nop_write, nop_flush, nop_timer, nop_lines,
			nop_parity, nop_progress, nop_done, nop_log };
		dg_sproto_params pp;
		dg_sproto *s;
		char ewhy[200];

		memset(&pp, 0, sizeof(pp));
		pp.image = one;
		pp.size = 1;
		pp.name = "check.bin";
		pp.sha256 = zsha;
		pp.options = (const char *const *)m->opts;
		pp.unit_timeout_ms = m->unit_timeout_ms;
		pp.max_retries = (unsigned)m->unit_retries;
		if (!(s = m->proto->new(&pp, &io, ewhy, sizeof(ewhy)))) {
			snprintf(why, whylen, "model %s: %s engine: %s", m->name, m->proto->name, ewhy);
			goto fail;
		}
		m->proto->free(s);
	}
	return 0;
nomem:
	snprintf(why, whylen, "out of memory");
fail:
	free(v);
	model_clear(m);
	return -1;
}

int
dg_serial_model_check(const char *value, char *why, size_t whylen)
{
	struct model m;

	if (model_parse(value, &m, why, whylen) != 0)
		return -1;
	model_clear(&m);
	return 0;
}

/* Device attributes onto o (already the model's settings); tty, model,
 * lock dir and hotplug out. */
static int
dev_parse(const char *attrs, dg_serial_opts *o, char **tty, char **model, char **lock_dir,
    int *hotplug, char *why, size_t whylen)
{
	const char *p = attrs;
	char key[64], *v = NULL;
	size_t vlen;
	int r;

	*tty = *model = *lock_dir = NULL;
	*hotplug = 0;
	while ((r = next_kv(&p, key, sizeof(key), &v, &vlen, why, whylen)) == 1) {
		int lk = line_key(o, key, v, why, whylen);

		if (lk < 0)
			goto fail;
		if (lk > 0) {
			free(v);
		} else if (strcmp(key, "tty") == 0 && vlen) {
			free(*tty);
			*tty = v;
		} else if (strcmp(key, "model") == 0 && vlen) {
			free(*model);
			*model = v;
		} else if (strcmp(key, "lock-dir") == 0) {
			free(*lock_dir);
			*lock_dir = v;
		} else if (strcmp(key, "hotplug") == 0) {
			int bad = parse_yesno(key, v, hotplug, why, whylen);

			free(v);
			if (bad)
				goto fail_nov;
		} else {
			snprintf(why, whylen, "unknown serial device attribute '%s'", key);
			goto fail;
		}
		v = NULL;
	}
	if (r < 0)
		goto fail_nov;
	if (!*tty || !*model) {
		snprintf(why, whylen, "driver=serial needs tty= and model=");
		goto fail_nov;
	}
	if (!*hotplug) {
		struct stat st;

		if (stat(*tty, &st) != 0) {
			snprintf(why, whylen, "tty %s: %s (hotplug=yes if it appears later)", *tty, strerror(errno));
			goto fail_nov;
		}
		if (!S_ISCHR(st.st_mode)) {
			snprintf(why, whylen, "tty %s is not a character device", *tty);
			goto fail_nov;
		}
	}
	if (dg_serial_opts_check(o, why, whylen) != 0)
		goto fail_nov;
	return 0;
fail:
	free(v);
fail_nov:
	free(*tty);
	free(*model);
	free(*lock_dir);
	*tty = *model = *lock_dir = NULL;
	return -1;
}

int
dg_serial_device_check(const char *attrs, char *why, size_t whylen)
{
	dg_serial_opts o;
	char *tty, *model, *lock_dir;
	int hp;

	dg_serial_opts_init(&o);
	if (dev_parse(attrs, &o, &tty, &model, &lock_dir, &hp, why, whylen) != 0)
		return -1;
	free(tty);
	free(model);
	free(lock_dir);
	return 0;
}

/* ---- deliveries ------------------------------------------------------- */

static void attempt_start(dg_delivery *d);
static void attempt_fail(dg_delivery *d, uint32_t ext, int retry, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void chat_check(dg_delivery *d);

static void
unlink_delivery(dg_delivery *d)
{
	dg_delivery **pp;

	for (pp = &d->drv->running; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			return;
		}
	}
}

static void
line_close(dg_delivery *d)
{
	if (d->eng) {
		d->m->proto->abort(d->eng);
		d->m->proto->free(d->eng);
		d->eng = NULL;
	}
	if (d->rd)
		event_free(d->rd);
	if (d->wr)
		event_free(d->wr);
	d->rd = d->wr = NULL;
	dg_serial_line_free(d->line);
	d->line = NULL;
	d->outlen = 0;
	d->rxlen = 0;
	if (d->etimer)
		evtimer_del(d->etimer);
}

static void
free_delivery(dg_delivery *d)
{
	line_close(d);
	if (d->timer)
		event_free(d->timer);
	if (d->etimer)
		event_free(d->etimer);
	if (d->deadline)
		event_free(d->deadline);
	if (d->mapped && d->img)
		munmap(d->img, d->imglen);
	else
		free(d->img);
	free(d->out);
	free(d->id);
	free(d->tty);
	free(d->lock_dir);
	free(d->want_version);
	free(d->name);
	free(d);
}

static void
finish(dg_delivery *d, int ok, const char *version, uint32_t ext, const char *detail)
{
	dg_delivery_events ev = d->ev;
	void *arg = d->arg;
	char v[64], det[300];

	snprintf(v, sizeof(v), "%s", version ? version : "");
	snprintf(det, sizeof(det), "%s", detail ? detail : "");
	if (ok)
		dg_log_info("%s: serial: delivery done after %d attempt(s): %s", d->id, d->attempt, det);
	else
		dg_log_warn("%s: serial: delivery failed (0x%08X) after %d attempt(s): %s", d->id,
		    (unsigned)ext, d->attempt, det);
	unlink_delivery(d);
	free_delivery(d);
	ev.done(arg, ok, version ? v : NULL, ok ? 0 : ext, det);
}

/* codes after which a new attempt may succeed */
static int
retryable(uint32_t ext)
{
	return ext == DG_SPROTO_EXT_TIMEOUT || ext == DG_SPROTO_EXT_RETRIES ||
	    ext == DG_SPROTO_EXT_LINE_GONE || ext == DG_SPROTO_EXT_PROTOCOL ||
	    ext == DG_SPROTO_EXT_VERIFY || ext == DG_SERIAL_EXT_NO_LINE;
}

static void
attempt_fail(dg_delivery *d, uint32_t ext, int retry, const char *fmt, ...)
{
	char detail[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	line_close(d);
	evtimer_del(d->timer);
	if (retry && d->attempt <= d->m->retries) {
		dg_log_warn("%s: serial: attempt %d/%d failed (0x%08X) in %s: %s; again in %d ms",
		    d->id, d->attempt, d->m->retries + 1, (unsigned)ext, phase_names[d->phase],
		    detail, d->backoff_ms);
		d->phase = PH_BACKOFF;
		dg_util_timer_arm(d->timer, d->backoff_ms);
		d->backoff_ms = d->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d->backoff_ms * 2;
		return;
	}
	dg_log_warn("%s: serial: attempt %d/%d failed (0x%08X) in %s: %s", d->id, d->attempt,
	    d->m->retries + 1, (unsigned)ext, phase_names[d->phase], detail);
	finish(d, 0, NULL, ext, detail);
}

/* Writes what is queued; -1 when the line is broken (the read side then
 * sees it gone). */
static int
out_flush(dg_delivery *d)
{
	while (d->outlen) {
		ssize_t w = write(dg_serial_line_fd(d->line), d->out, d->outlen);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				event_add(d->wr, NULL);
				return 0;
			}
			d->outlen = 0;
			return -1;
		}
		memmove(d->out, d->out + w, d->outlen - (size_t)w);
		d->outlen -= (size_t)w;
	}
	return 0;
}

static int
queue(dg_delivery *d, const void *buf, size_t n)
{
	if (!d->line)
		return -1;
	if (d->outlen + n > d->outcap) {
		size_t cap = (d->outlen + n) * 2 + 256;
		uint8_t *p = realloc(d->out, cap);

		if (!p)
			return -1;
		d->out = p;
		d->outcap = cap;
	}
	memcpy(d->out + d->outlen, buf, n);
	d->outlen += n;
	return out_flush(d);
}

static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
	dg_delivery *d = arg;

	(void)fd;
	(void)what;
	out_flush(d);
}

/* ---- the engine's io -------------------------------------------------- */

static int
io_write(void *arg, const void *buf, size_t n)
{
	return queue(arg, buf, n);
}

static void
io_flush(void *arg)
{
	dg_delivery *d = arg;

	if (d->line)
		dg_serial_line_flush(d->line);
	d->outlen = 0;
}

static void
io_timer(void *arg, int ms)
{
	dg_delivery *d = arg;

	if (ms < 0)
		evtimer_del(d->etimer);
	else
		dg_util_timer_arm(d->etimer, ms);
}

static int
io_lines(void *arg, int dtr, int rts)
{
	dg_delivery *d = arg;

	return d->line && dg_serial_line_modem(d->line, dtr, rts) == DG_OK ? 0 : -1;
}

static int
io_parity(void *arg, dg_sproto_parity p)
{
	dg_delivery *d = arg;
	char c = p == DG_SPROTO_PARITY_EVEN ? 'e' : p == DG_SPROTO_PARITY_ODD ? 'o' : 'n';

	if (!d->line)
		return -1;
	if (dg_serial_line_parity(d->line, c) == DG_OK)
		return 0;
	/* the Linux pty driver carries no parity: a simulated device */
	if (d->is_pty) {
		dg_log_info("%s: serial: %s is a pty, which cannot carry parity: the line stays 8N1",
		    d->id, d->tty);
		return 0;
	}
	return -1;
}

static void
io_progress(void *arg, uint64_t done, uint64_t total)
{
	dg_delivery *d = arg;

	d->ev.progress(d->arg, DG_DELIVERY_TRANSFERRING, done, total);
	if (!d->fault_passed && done >= total / 2) {
		d->fault_passed = 1;
		/* half of the image went out: the line breaks, as a pulled cable */
		DG_FAULT("driver/serial/mid-transfer", d->fault_hit = 1);
	}
}

static void
io_done(void *arg, int ok, uint32_t ext, const char *detail, unsigned retransmits)
{
	dg_delivery *d = arg;

	d->eng_done = 1;
	d->eng_ok = ok;
	d->eng_ext = ext;
	d->retransmits = retransmits;
	snprintf(d->eng_detail, sizeof(d->eng_detail), "%s", detail ? detail : "");
}

static void
io_log(void *arg, const char *msg)
{
	dg_delivery *d = arg;

	dg_log_debug("%s: serial: %s", d->id, msg);
}

/* ---- phases ----------------------------------------------------------- */

static void
rx_reset(dg_delivery *d)
{
	d->rxlen = 0;
	d->rx[0] = '\0';
}

static void
rx_add(dg_delivery *d, const uint8_t *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (d->rxlen == RX_MAX) {
			memmove(d->rx, d->rx + RX_MAX / 2, RX_MAX / 2);
			d->rxlen = RX_MAX / 2;
		}
		/* regexec stops at NUL */
		d->rx[d->rxlen++] = buf[i] ? (char)buf[i] : '\x01';
	}
	d->rx[d->rxlen] = '\0';
}

static void
send_chat(dg_delivery *d, const char *s, size_t n)
{
	if (s && n && queue(d, s, n) != 0)
		dg_log_debug("%s: serial: write failed", d->id);
}

static void phase_enter(dg_delivery *d);
static void phase_version(dg_delivery *d, int after);

static int engine_check(dg_delivery *d);

/* Starts the engine; it may end at once (engine_check): the caller must
 * not touch d afterwards. */
static void
start_engine(dg_delivery *d, const char *rest, size_t n)
{
	static const dg_sproto_io io = { NULL, io_write, io_flush, io_timer, io_lines, io_parity,
		io_progress, io_done, io_log };
	dg_sproto_params p;
	char why[200];

	d->io = io;
	d->io.arg = d;

	memset(&p, 0, sizeof(p));
	p.image = d->img;
	p.size = d->imglen;
	p.name = d->name;
	p.sha256 = d->sha;
	p.options = (const char *const *)d->m->opts;
	p.unit_timeout_ms = d->m->unit_timeout_ms;
	p.max_retries = (unsigned)d->m->unit_retries;
	evtimer_del(d->timer);
	if (!(d->eng = d->m->proto->new(&p, &d->io, why, sizeof(why)))) {
		attempt_fail(d, DG_SERIAL_EXT_CONFIG, 0, "%s engine: %s", d->m->proto->name, why);
		return;
	}
	d->eng_done = d->fault_hit = 0;
	d->phase = PH_ENGINE;
	rx_reset(d);
	dg_log_info("%s: serial: transfer start (%s, %zu bytes, attempt %d, tty %s)", d->id,
	    d->m->proto->name, d->imglen, d->attempt, d->tty);
	d->m->proto->start(d->eng);
	if (!d->eng_done && !d->fault_hit && n)
		d->m->proto->input(d->eng, (const uint8_t *)rest, n);
	engine_check(d);
}

/* after every call into the engine: its end or the fault point */
static int
engine_check(dg_delivery *d)
{
	if (d->fault_hit) {
		attempt_fail(d, DG_SPROTO_EXT_LINE_GONE, 1, "fault point driver/serial/mid-transfer");
		return -1;
	}
	if (!d->eng_done)
		return 0;
	d->m->proto->free(d->eng);
	d->eng = NULL;
	evtimer_del(d->etimer);
	dg_log_info("%s: serial: transfer end (ok=%d, %u retransmissions): %s", d->id, d->eng_ok,
	    d->retransmits, d->eng_detail);
	if (!d->eng_ok) {
		attempt_fail(d, d->eng_ext, retryable(d->eng_ext), "%s: %s", d->m->proto->name, d->eng_detail);
		return -1;
	}
	d->ev.progress(d->arg, DG_DELIVERY_INSTALLING, 0, 0);
	d->step = 0;
	d->phase = PH_LINES_EXIT;
	dg_util_timer_arm(d->timer, 0);
	return 1;
}

static void
phase_install(dg_delivery *d)
{
	if (!d->m->has_done_re && !d->m->has_fail_re) {
		phase_version(d, 1);
		return;
	}
	d->phase = PH_INSTALL;
	dg_util_timer_arm(d->timer, d->m->chat_timeout_ms);
	chat_check(d);
}

static void
phase_version(dg_delivery *d, int after)
{
	if (!d->m->has_version_re) {
		if (!after)
			phase_enter(d);
		else
			finish(d, 1, NULL, 0, "installed (no version chat: version not read back)");
		return;
	}
	d->phase = after ? PH_VERSION_AFTER : PH_VERSION;
	d->step = 0;
	if (!after)
		rx_reset(d);
	send_chat(d, d->m->version_send, d->m->version_send_len);
	dg_util_timer_arm(d->timer, d->m->chat_timeout_ms);
	if (after)
		chat_check(d);
}

static void
enter_send(dg_delivery *d)
{
	rx_reset(d);
	send_chat(d, d->m->enter_send, d->m->enter_send_len);
	if (!d->m->has_enter_re) {
		start_engine(d, NULL, 0);
		return;
	}
	d->phase = PH_ENTER;
	dg_util_timer_arm(d->timer, d->m->chat_timeout_ms);
}

static void
phase_enter(dg_delivery *d)
{
	if (d->m->nentry) {
		d->phase = PH_LINES_ENTER;
		d->step = 0;
		dg_util_timer_arm(d->timer, 0);
		return;
	}
	enter_send(d);
}

static int
match(const regex_t *re, const char *s, regmatch_t *m, size_t nm)
{
	return regexec(re, s, nm, m, 0) == 0;
}

/* the chat buffer against what the phase waits for */
static void
chat_check(dg_delivery *d)
{
	regmatch_t mt[2];

	switch (d->phase) {
	case PH_VERSION:
	case PH_VERSION_AFTER:
		if (!match(&d->m->version_re, d->rx, mt, 2) || mt[1].rm_so < 0)
			return;
		snprintf(d->version, sizeof(d->version), "%.*s", (int)(mt[1].rm_eo - mt[1].rm_so),
		    d->rx + mt[1].rm_so);
		evtimer_del(d->timer);
		if (d->phase == PH_VERSION) {
			snprintf(d->before, sizeof(d->before), "%s", d->version);
			dg_log_info("%s: serial: device runs version %s", d->id, d->version);
			if (d->want_version && strcmp(d->version, d->want_version) == 0) {
				finish(d, 1, d->version, 0, "the device already runs the target version");
				return;
			}
			phase_enter(d);
			return;
		}
		dg_log_info("%s: serial: version after install: %s (was %s)", d->id, d->version, d->before);
		if (d->want_version && strcmp(d->version, d->want_version) != 0) {
			char det[200];

			snprintf(det, sizeof(det), "the device reports version %s after the install, not %s",
			    d->version, d->want_version);
			finish(d, 0, NULL, DG_SERIAL_EXT_VERSION, det);
			return;
		}
		finish(d, 1, d->version, 0, "installed, version read back");
		return;
	case PH_ENTER:
		if (!match(&d->m->enter_re, d->rx, mt, 1))
			return;
		{
			char rest[RX_MAX + 1];
			size_t n = d->rxlen - (size_t)mt[0].rm_eo;
			size_t i;

			memcpy(rest, d->rx + mt[0].rm_eo, n);
			for (i = 0; i < n; i++)
				if (rest[i] == '\x01')
					rest[i] = '\0';
			dg_log_debug("%s: serial: bootloader entered", d->id);
			start_engine(d, rest, n);
		}
		return;
	case PH_INSTALL:
		if (d->m->has_fail_re && match(&d->m->fail_re, d->rx, mt, 1)) {
			attempt_fail(d, DG_SERIAL_EXT_INSTALL_FAILED, 0, "the device reports a failed install: %.*s",
			    (int)(mt[0].rm_eo - mt[0].rm_so), d->rx + mt[0].rm_so);
			return;
		}
		if (d->m->has_done_re && match(&d->m->done_re, d->rx, mt, 1)) {
			dg_log_info("%s: serial: install confirmed by the device", d->id);
			evtimer_del(d->timer);
			/* what follows is the answer to the version chat */
			rx_reset(d);
			phase_version(d, 1);
		}
		return;
	default:
		return;
	}
}

/* One read per call (the event is level-triggered): whatever ends the
 * attempt or the delivery is the last thing done here. */
static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	dg_delivery *d = arg;
	uint8_t buf[4096];
	ssize_t n = dg_serial_line_read(d->line, buf, sizeof(buf));
	size_t i = 0;

	(void)fd;
	(void)what;
	if (n == 0)
		return;
	if (n < 0) {
		attempt_fail(d, DG_SPROTO_EXT_LINE_GONE, 1, "the line %s is gone", d->tty);
		return;
	}
	if (d->phase == PH_ENGINE && d->eng) {
		/* byte by byte: what follows the engine's end is the chat's */
		while (i < (size_t)n) {
			int r;

			d->m->proto->input(d->eng, buf + i, 1);
			i++;
			if ((r = engine_check(d)) < 0)
				return;
			if (r > 0)
				break;
		}
	}
	if (i < (size_t)n && d->phase != PH_BACKOFF) {
		rx_add(d, buf + i, (size_t)n - i);
		chat_check(d);
	}
}

static void
on_engine_timer(evutil_socket_t fd, short what, void *arg)
{
	dg_delivery *d = arg;

	(void)fd;
	(void)what;
	if (!d->eng)
		return;
	d->m->proto->timeout(d->eng);
	engine_check(d);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	dg_delivery *d = arg;
	const struct step *st;

	(void)fd;
	(void)what;
	switch (d->phase) {
	case PH_BACKOFF:
		attempt_start(d);
		return;
	case PH_LINES_ENTER:
	case PH_LINES_EXIT:
		if (d->phase == PH_LINES_ENTER ? d->step >= d->m->nentry : d->step >= d->m->nexit) {
			if (d->phase == PH_LINES_ENTER)
				enter_send(d);
			else
				phase_install(d);
			return;
		}
		st = d->phase == PH_LINES_ENTER ? &d->m->entry[d->step] : &d->m->exit[d->step];
		d->step++;
		if ((st->dtr >= 0 || st->rts >= 0) && d->line &&
		    dg_serial_line_modem(d->line, st->dtr, st->rts) != DG_OK) {
			attempt_fail(d, DG_SPROTO_EXT_LINE_GONE, 1, "setting DTR/RTS failed");
			return;
		}
		dg_util_timer_arm(d->timer, STEP_MS);
		return;
	case PH_VERSION_AFTER:
		/* a device that reboots after its install: ask again, but the
		 * image is in: no new attempt */
		if (++d->step < 3) {
			send_chat(d, d->m->version_send, d->m->version_send_len);
			dg_util_timer_arm(d->timer, d->m->chat_timeout_ms);
			return;
		}
		attempt_fail(d, DG_SPROTO_EXT_TIMEOUT, 0, "no version from the device after its install (3 x %d s)",
		    d->m->chat_timeout_ms / 1000);
		return;
	default:
		attempt_fail(d, DG_SPROTO_EXT_TIMEOUT, 1, "no answer from the device within %d s",
		    d->m->chat_timeout_ms / 1000);
		return;
	}
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	dg_delivery *d = arg;

	(void)fd;
	(void)what;
	attempt_fail(d, DG_SPROTO_EXT_TIMEOUT, 0, "the delivery took longer than its bound");
}

static void
attempt_start(dg_delivery *d)
{
	dg_serial_opts o = d->o;
	char real[PATH_MAX];
	dg_err err;

	d->attempt++;
	d->fault_passed = 0;
	rx_reset(d);
	o.lock_dir = d->lock_dir;
	d->is_pty = realpath(d->tty, real) && strncmp(real, "/dev/pts/", 9) == 0;
	if (!(d->line = dg_serial_line_open(d->tty, &o, &err))) {
		d->phase = PH_BACKOFF;
		attempt_fail(d, DG_SERIAL_EXT_NO_LINE, err == DG_ERR_NOENT || err == DG_ERR_BUSY ||
		    err == DG_ERR_SYSTEM, "cannot open %s: %s", d->tty, dg_strerror(err));
		return;
	}
	d->rd = event_new(d->drv->evbase, dg_serial_line_fd(d->line), EV_READ | EV_PERSIST, on_readable, d);
	d->wr = event_new(d->drv->evbase, dg_serial_line_fd(d->line), EV_WRITE, on_writable, d);
	if (!d->rd || !d->wr || event_add(d->rd, NULL) != 0) {
		attempt_fail(d, DG_SERIAL_EXT_NO_LINE, 0, "out of memory");
		return;
	}
	dg_log_debug("%s: serial: %s open (attempt %d)", d->id, d->tty, d->attempt);
	phase_version(d, 0);
}

static struct sdev *
find_dev(struct serial_driver *drv, const char *id)
{
	struct sdev *s;

	for (s = drv->devs; s; s = s->next)
		if (strcmp(s->id, id) == 0)
			return s;
	return NULL;
}

static int
load_image(dg_delivery *d, const char *path, uint64_t size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != size) {
		close(fd);
		return -1;
	}
	if (size == 0) {
		d->img = calloc(1, 1);
		d->imglen = 0;
	} else {
		void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);

		if (p != MAP_FAILED) {
			d->img = p;
			d->imglen = (size_t)size;
			d->mapped = 1;
		}
	}
	close(fd);
	return d->img ? 0 : -1;
}

static dg_delivery *
serial_deliver(dg_driver *base, const dg_delivery_req *req, const dg_delivery_events *ev,
    void *arg, dg_err *err)
{
	struct serial_driver *drv = (struct serial_driver *)base;
	struct sdev *s = find_dev(drv, req->device_id);
	dg_delivery *d;
	char name[96];

	if (!s) {
		dg_log_err("%s: serial: not a configured serial device", req->device_id);
		*err = DG_ERR_INVAL;
		return NULL;
	}
	if (!(d = calloc(1, sizeof(*d))))
		goto nomem;
	d->drv = drv;
	d->ev = *ev;
	d->arg = arg;
	d->m = s->m;
	d->o = s->o;
	d->backoff_ms = s->m->reopen_delay_ms;
	snprintf(name, sizeof(name), "%s-%s.bin", req->device_id, req->version ? req->version : "image");
	if (!(d->id = strdup(req->device_id)) || !(d->tty = strdup(s->tty)) || !(d->name = strdup(name)) ||
	    (s->lock_dir && !(d->lock_dir = strdup(s->lock_dir))) ||
	    (req->version && !(d->want_version = strdup(req->version))))
		goto nomem;
	if (!req->sha256_hex || dg_util_hex_decode(req->sha256_hex, d->sha, 32) != DG_OK) {
		*err = DG_ERR_INVAL;
		goto fail;
	}
	if (load_image(d, req->image_path, req->image_size) != 0) {
		dg_log_err("%s: serial: cannot map the image %s", req->device_id, req->image_path);
		*err = DG_ERR_IO;
		goto fail;
	}
	d->timer = evtimer_new(drv->evbase, on_timer, d);
	d->etimer = evtimer_new(drv->evbase, on_engine_timer, d);
	d->deadline = evtimer_new(drv->evbase, on_deadline, d);
	if (!d->timer || !d->etimer || !d->deadline)
		goto nomem;
	if (req->timeout_s > 0)
		dg_util_timer_arm(d->deadline, (int64_t)req->timeout_s * 1000);
	d->next = drv->running;
	drv->running = d;
	dg_log_info("%s: serial: delivery of job %s (%" PRIu64 " bytes, %s on %s)", d->id, req->job_id,
	    req->image_size, d->m->proto->name, d->tty);
	/* the first attempt from the loop: done must not come from deliver() */
	d->phase = PH_BACKOFF;
	dg_util_timer_arm(d->timer, 0);
	*err = DG_OK;
	return d;
nomem:
	*err = DG_ERR_NOMEM;
fail:
	if (d)
		free_delivery(d);
	return NULL;
}

static void
serial_cancel(dg_delivery *d)
{
	dg_log_info("%s: serial: delivery canceled", d->id);
	if (d->eng && d->line) {
		d->m->proto->abort(d->eng);
		out_flush(d);
		d->m->proto->free(d->eng);
		d->eng = NULL;
	}
	unlink_delivery(d);
	free_delivery(d);
}

static void
free_devs(struct sdev *s)
{
	while (s) {
		struct sdev *n = s->next;

		free(s->id);
		free(s->tty);
		free(s->lock_dir);
		free(s);
		s = n;
	}
}

static void
serial_free(dg_driver *base)
{
	struct serial_driver *drv = (struct serial_driver *)base;
	size_t i;

	while (drv->running)
		serial_cancel(drv->running);
	free_devs(drv->devs);
	for (i = 0; i < drv->nmodels; i++)
		model_clear(&drv->models[i]);
	free(drv->models);
	free(drv);
}

static const struct dg_driver_ops serial_ops = {
	"serial", serial_deliver, serial_cancel, serial_free
};

dg_driver *
dg_driver_serial_new(struct event_base *base, const char *const *models, size_t nmodels, dg_err *err)
{
	struct serial_driver *drv;
	size_t i, j;

	if (!(drv = calloc(1, sizeof(*drv))) ||
	    (nmodels && !(drv->models = calloc(nmodels, sizeof(*drv->models))))) {
		free(drv);
		*err = DG_ERR_NOMEM;
		return NULL;
	}
	drv->base.ops = &serial_ops;
	drv->evbase = base;
	for (i = 0; i < nmodels; i++) {
		char why[256];

		if (model_parse(models[i], &drv->models[i], why, sizeof(why)) != 0) {
			dg_log_err("serial-model '%s': %s", models[i], why);
			*err = DG_ERR_CONFIG_VALUE;
			goto fail;
		}
		drv->nmodels++;
		for (j = 0; j < i; j++) {
			if (strcmp(drv->models[j].name, drv->models[i].name) == 0) {
				dg_log_err("serial-model %s is defined twice", drv->models[i].name);
				*err = DG_ERR_CONFIG_VALUE;
				goto fail;
			}
		}
	}
	*err = DG_OK;
	return &drv->base;
fail:
	serial_free(&drv->base);
	return NULL;
}

dg_err
dg_driver_serial_add_device(dg_driver *base, const char *id, const char *attrs)
{
	struct serial_driver *drv = (struct serial_driver *)base;
	struct sdev *s, *old;
	char *tty, *model, *lock_dir, why[256];
	const struct model *m = NULL;
	dg_serial_opts o;
	size_t i;
	int hp;

	/* the model first: the device's settings override its line settings */
	dg_serial_opts_init(&o);
	if (dev_parse(attrs, &o, &tty, &model, &lock_dir, &hp, why, sizeof(why)) != 0) {
		dg_log_err("device %s: %s", id, why);
		return DG_ERR_CONFIG_VALUE;
	}
	for (i = 0; i < drv->nmodels; i++)
		if (strcmp(drv->models[i].name, model) == 0)
			m = &drv->models[i];
	if (!m) {
		dg_log_err("device %s: model=%s is not defined by a serial-model line", id, model);
		free(tty);
		free(model);
		free(lock_dir);
		return DG_ERR_CONFIG_VALUE;
	}
	free(tty);
	free(lock_dir);
	o = m->line;
	if (dev_parse(attrs, &o, &tty, &model, &lock_dir, &hp, why, sizeof(why)) != 0) {
		dg_log_err("device %s: %s", id, why);
		return DG_ERR_CONFIG_VALUE;
	}
	free(model);
	if (!(s = calloc(1, sizeof(*s))) || !(s->id = strdup(id))) {
		free(s);
		free(tty);
		free(lock_dir);
		return DG_ERR_NOMEM;
	}
	s->tty = tty;
	s->lock_dir = lock_dir;
	s->m = m;
	s->o = o;
	s->hotplug = hp;
	if ((old = find_dev(drv, id))) {
		/* a reload: deliveries in flight keep their own copy */
		struct sdev **pp;

		for (pp = &drv->devs; *pp != old; pp = &(*pp)->next)
			;
		*pp = old->next;
		old->next = NULL;
		free_devs(old);
	}
	s->next = drv->devs;
	drv->devs = s;
	dg_log_debug("device %s: serial, %s on %s at %ld baud", id, m->proto->name, s->tty, o.baud);
	return DG_OK;
}
