/* dg_cli - the subcommands of the `deltagate` tool.
 *
 * Each subcommand is `int dg_cli_NAME(int argc, char **argv)` with argv[0]
 * the subcommand's name; it returns the process exit status:
 * 0 success, 1 operation failed, 2 usage error, other values as its
 * man page documents.
 */
#ifndef DG_CLI_H
#define DG_CLI_H

#define DG_EXIT_OK 0
#define DG_EXIT_FAIL 1
#define DG_EXIT_USAGE 2

typedef struct dg_cli_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} dg_cli_cmd;

/* shadow (issue 2) */
int dg_cli_shadow(int argc, char **argv);
/* cache (issue 3) */
/* diff, diffgen, apply, inspect, manifest (issue 6) */
/* cache (issue 3): src/cli_cache.c */
int dg_cli_cache(int argc, char **argv);
/* delta engine (issue 6): cli_delta.c */
int dg_cli_diff(int argc, char **argv);
int dg_cli_diffgen(int argc, char **argv);
int dg_cli_apply(int argc, char **argv);
int dg_cli_inspect(int argc, char **argv);
/* manifest (issue 6): import manifest v5 writer, cli_manifest.c */
int dg_cli_manifest(int argc, char **argv);
/* operator tools (issue 13): cli_presign.c */
int dg_cli_presign(int argc, char **argv);
int dg_cli_keygen(int argc, char **argv);
int dg_cli_sign(int argc, char **argv);
/* cli_deploy.c */
int dg_cli_deploy(int argc, char **argv);
/* cli_status.c */
int dg_cli_status(int argc, char **argv);
/* The devices gateways serve (reported.devices of each gateway's shadow),
 * comma-separated; NULL, with a message on stderr, when one did not answer
 * within timeout_s or lists none. Caller frees. */
char *dg_cli_gateway_devices(const char *broker, const char *root, char *const *gws,
    size_t ngw, int timeout_s);

#endif
