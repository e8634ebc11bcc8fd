/* dg_config - declarative configuration: one table row per option.
 *
 * The same table drives the configuration file ("name value" lines, '#'
 * comments, values may be "double quoted"), the command line
 * ("--name value" or "--name=value"; booleans also "--name" alone), the
 * defaults, range checks, validators and --help. Errors are reported as
 * "file:line: why" (or "--name: why").
 */
#ifndef DG_CONFIG_H
#define DG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "dg_err.h"

typedef enum dg_opt_type {
	DG_OPT_STR,   /* char *, strdup'ed; freed by dg_config_free */
	DG_OPT_INT,   /* int64_t, within [min, max] */
	DG_OPT_SIZE,  /* uint64_t with K/M/G suffixes, within [min, max] */
	DG_OPT_BOOL,  /* int: yes/no, true/false, on/off, 1/0 */
	DG_OPT_LIST,  /* dg_config_list: every occurrence appends a string */
	DG_OPT_GROUP  /* not an option: the rows after it, up to the next
	               * group, form the group named by name (DG_OPTION_GROUP) */
} dg_opt_type;

typedef struct dg_config_list {
	char **items;
	size_t count;
} dg_config_list;

typedef struct dg_option {
	const char *name;     /* "broker"; on the command line "--broker" */
	dg_opt_type type;
	size_t offset;        /* offsetof(struct your_config, field) */
	int64_t min, max;     /* bounds for INT and SIZE (max 0: no bound) */
	const char *defval;   /* default as text, or NULL */
	int reloadable;       /* may change on SIGHUP without a restart */
	/* optional: extra check of the parsed text; return 0 if fine, else
	 * write a reason into why and return -1 */
	int (*validate)(const char *value, char *why, size_t whylen);
	const char *help;
} dg_option;

/* A group heading row: --help, the man page's option list and the example
 * file present the options under it. Parsers skip it. */
#define DG_OPTION_GROUP(title) { (title), DG_OPT_GROUP, 0, 0, 0, NULL, 0, NULL, NULL }

/* The value an example configuration file shows for an option that has no
 * default (and, with active, sets uncommented: the required options). */
typedef struct dg_config_example {
	const char *name;
	const char *value;
	int active;
} dg_config_example;

/* Validator for log-level options: err, warn, info or debug. */
int dg_config_check_log_level(const char *value, char *why, size_t whylen);

/* The daemons' own arguments, split from the table options: -c FILE,
 * --test-config, --help/-h, --version, --dump-config-example,
 * --dump-man-options. argv[0] and every other argument go to out
 * (argc + 1 slots, caller-allocated), *nout their count. */
typedef struct dg_config_cli {
	const char *file;
	int test_config, help, version;
	int dump_example, dump_man;
} dg_config_cli;
void dg_config_split_args(int argc, char **argv, dg_config_cli *cli, char **out, int *nout);

/* Check the table itself: no name twice, no option before the first group
 * heading when there are headings. DG_ERR_INTERNAL (logged) if it is wrong. */
dg_err dg_config_check_table(const dg_option *tab, size_t n);

/* Check the table (dg_config_check_table), then set every option to its
 * default. DG_ERR_INTERNAL for a bad table, DG_ERR_CONFIG_VALUE if a
 * default is itself invalid (programming errors, logged). */
dg_err dg_config_defaults(const dg_option *tab, size_t n, void *cfg);

/* Read a configuration file into cfg (already holding defaults). Errors are
 * logged as file:line: DG_ERR_NOENT/DG_ERR_PERM (cannot read),
 * DG_ERR_CONFIG_UNKNOWN, DG_ERR_CONFIG_VALUE. */
dg_err dg_config_load_file(const dg_option *tab, size_t n, void *cfg, const char *path);

/* Set one option from text (origin names the source in messages). */
dg_err dg_config_set(const dg_option *tab, size_t n, void *cfg,
    const char *name, const char *value, const char *origin);

/* Parse "--name value" arguments from argv[*optind] on, stopping at the
 * first argument that is not an option (or after "--"); *optind is left at
 * it. Unknown options are DG_ERR_CONFIG_UNKNOWN (logged). */
dg_err dg_config_parse_args(const dg_option *tab, size_t n, void *cfg,
    int argc, char **argv, int *optind);

/* Free every string and list of cfg. cfg itself is the caller's. */
void dg_config_free(const dg_option *tab, size_t n, void *cfg);

/* Print one line per option (name, default, help) to stdout, under the
 * table's group headings. */
void dg_config_usage(const dg_option *tab, size_t n);

/* Print an example configuration file to stdout: header (a comment block,
 * printed as given), then every option under its group heading with its help
 * as a comment and "#name default" (commented out), or "name value" for an
 * active example. An option without default takes its value from ex.
 * DG_ERR_INTERNAL (logged, partial output) if an option has neither default
 * nor example, or ex names an option the table lacks. */
dg_err dg_config_print_example(const dg_option *tab, size_t n,
    const dg_config_example *ex, size_t nex, const char *header);

/* Print the options as man(7) source to stdout: ".SS group" headings, one
 * ".TP" entry per option with its help, default and whether SIGHUP reloads
 * it. */
void dg_config_print_man(const dg_option *tab, size_t n);

/* Print the effective configuration in file syntax to stdout; values of
 * options named like password/psk/secret/token print as <redacted>. */
void dg_config_dump(const dg_option *tab, size_t n, const void *cfg);

#endif
