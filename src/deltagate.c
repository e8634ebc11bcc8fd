/* deltagate - the command-line tool: one binary, one subcommand per area. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "dg_cli.h"
#include "dg_log.h"

/* Subcommands register here (defined in cli_*.c). */
static const dg_cli_cmd commands[] = {
	/* shadow (issue 2) */
	{ "shadow", dg_cli_shadow, "talk to the shadow service: get, update, delete, watch" },
	/* cache (issue 3) */
	{ "cache", dg_cli_cache, "manage the content-addressed image cache" },
	/* diff, diffgen, apply, inspect, manifest (issue 6) */
	{ "diff", dg_cli_diff, "make a verified delta from SOURCE to TARGET" },
	{ "diffgen", dg_cli_diffgen, "diff with DiffGen's argument order" },
	{ "apply", dg_cli_apply, "rebuild TARGET from SOURCE and a delta" },
	{ "inspect", dg_cli_inspect, "show a delta's header and recipe" },
	{ "manifest", dg_cli_manifest, "write an import manifest (version 5.0)" },
	/* operator tools (issue 13) */
	{ "deploy", dg_cli_deploy, "stage an image and roll it out in waves (cancel, resume)" },
	{ "status", dg_cli_status, "the fleet at a glance: per job, per gateway, per device" },
	{ "presign", dg_cli_presign, "print a pre-signed download link (S3 SigV4, nginx secure_link)" },
	{ "sign", dg_cli_sign, "sign an update command (Ed25519 JWS) for deltagated --trusted-key" },
	{ "keygen", dg_cli_keygen, "write an Ed25519 key pair for signed update commands" },
	{ NULL, NULL, NULL }
};

static void
usage(FILE *out)
{
	const dg_cli_cmd *c;

	fprintf(out, "usage: deltagate COMMAND [OPTIONS] [ARGS]\n\ncommands:\n");
	for (c = commands; c->name; c++)
		fprintf(out, "  %-10s %s\n", c->name, c->summary);
	fprintf(out, "\n'deltagate COMMAND --help' describes one command.\n");
}

int
main(int argc, char **argv)
{
	const dg_cli_cmd *c;

	dg_log_open("deltagate", 0, DG_LOG_WARN);
	if (argc < 2) {
		usage(stderr);
		return DG_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return DG_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("deltagate %s\n", PACKAGE_VERSION);
		return DG_EXIT_OK;
	}
	for (c = commands; c->name; c++)
		if (strcmp(argv[1], c->name) == 0)
			return c->run(argc - 1, argv + 1);
	fprintf(stderr, "deltagate: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return DG_EXIT_USAGE;
}
