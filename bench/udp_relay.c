/* udp_relay - a lossy UDP link for bench/coap.
 *
 *   udp_relay [-l LOSS] [-s SEED] [-m MAX_CLIENTS] LISTEN_PORT SERVER_PORT
 *
 * Listens on 127.0.0.1:LISTEN_PORT. Every client address seen there gets its
 * own socket towards 127.0.0.1:SERVER_PORT, so the server sees one peer per
 * client (as it would without the relay), and the server's answers on that
 * socket go back to that client. Each datagram, in either direction, is
 * dropped with probability LOSS (0 <= LOSS < 1), from a pseudo-random
 * sequence seeded with SEED (same seed, same drop pattern for the same
 * traffic order). Programs we did not write (coap-client) and the gateway's
 * push PUTs thus cross the same lossy link as the simulator.
 *
 * On SIGTERM or SIGINT it prints to stdout one line:
 *   "relay clients N up F/D down F/D" (forwarded/dropped, client->server
 *   is up) and exits 0. Errors: exit 2 for usage, 1 for socket errors. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dg_util.h"

struct client {
	struct sockaddr_in addr; /* the client, as seen on the listen socket */
	int fd;                  /* connected to the server */
};

static volatile sig_atomic_t stop;
static uint64_t rng_state;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* xorshift64*: a reproducible drop pattern, not a secret */
static double
rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)((rng_state * UINT64_C(2685821657736338717)) >> 11) / 9007199254740992.0;
}

static int
usage(void)
{
	fprintf(stderr, "usage: udp_relay [-l LOSS] [-s SEED] [-m MAX_CLIENTS] LISTEN_PORT SERVER_PORT\n");
	return 2;
}

static void
loopback(struct sockaddr_in *sin, uint16_t port)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin->sin_port = htons(port);
}

int
main(int argc, char **argv)
{
	double loss = 0;
	uint64_t seed = 1, maxc = 2048, lport, sport;
	struct sockaddr_in laddr, saddr;
	struct client *cl = NULL;
	struct pollfd *pfd = NULL;
	size_t ncl = 0, i;
	uint64_t up_fwd = 0, up_drop = 0, down_fwd = 0, down_drop = 0;
	unsigned char buf[65536];
	int lfd = -1, c, rc = 1;
	char *end;
	struct sigaction sa;

	while ((c = getopt(argc, argv, "l:s:m:")) != -1) {
		switch (c) {
		case 'l':
			errno = 0;
			loss = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(loss >= 0 && loss < 1))
				return usage();
			break;
		case 's':
			if (dg_util_parse_u64(optarg, 0, UINT64_MAX, &seed) != DG_OK)
				return usage();
			break;
		case 'm':
			if (dg_util_parse_u64(optarg, 1, 100000, &maxc) != DG_OK)
				return usage();
			break;
		default:
			return usage();
		}
	}
	if (argc - optind != 2 ||
	    dg_util_parse_u64(argv[optind], 1, 65535, &lport) != DG_OK ||
	    dg_util_parse_u64(argv[optind + 1], 1, 65535, &sport) != DG_OK)
		return usage();
	rng_state = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	cl = calloc(maxc, sizeof(*cl));
	pfd = calloc(maxc + 1, sizeof(*pfd));
	if (!cl || !pfd) {
		fprintf(stderr, "udp_relay: out of memory\n");
		goto fail;
	}
	loopback(&laddr, (uint16_t)lport);
	loopback(&saddr, (uint16_t)sport);
	if ((lfd = socket(AF_INET, SOCK_DGRAM, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&laddr, sizeof(laddr)) < 0) {
		fprintf(stderr, "udp_relay: cannot listen on 127.0.0.1:%" PRIu64 ": %s\n", lport, strerror(errno));
		goto fail;
	}
	while (!stop) {
		pfd[0].fd = lfd;
		pfd[0].events = POLLIN;
		for (i = 0; i < ncl; i++) {
			pfd[i + 1].fd = cl[i].fd;
			pfd[i + 1].events = POLLIN;
		}
		if (poll(pfd, ncl + 1, 500) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "udp_relay: poll: %s\n", strerror(errno));
			goto fail;
		}
		if (pfd[0].revents & POLLIN) {
			struct sockaddr_in from;
			socklen_t flen = sizeof(from);
			ssize_t n = recvfrom(lfd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);

			if (n >= 0) {
				for (i = 0; i < ncl; i++)
					if (cl[i].addr.sin_port == from.sin_port &&
					    cl[i].addr.sin_addr.s_addr == from.sin_addr.s_addr)
						break;
				if (i == ncl && ncl < maxc) {
					int fd = socket(AF_INET, SOCK_DGRAM, 0);

					if (fd < 0 || connect(fd, (struct sockaddr *)&saddr, sizeof(saddr)) < 0) {
						fprintf(stderr, "udp_relay: upstream socket: %s\n", strerror(errno));
						if (fd >= 0)
							close(fd);
						goto fail;
					}
					cl[ncl].addr = from;
					cl[ncl].fd = fd;
					ncl++;
				}
				if (i < ncl) {
					if (rng_next() < loss) {
						up_drop++;
					} else {
						up_fwd++;
						(void)send(cl[i].fd, buf, (size_t)n, 0);
					}
				}
			}
		}
		for (i = 0; i < ncl; i++) {
			ssize_t n;

			if (!(pfd[i + 1].revents & (POLLIN | POLLERR)))
				continue;
			/* ECONNREFUSED (server not up yet) is read and ignored */
			n = recv(cl[i].fd, buf, sizeof(buf), 0);
			if (n < 0)
				continue;
			if (rng_next() < loss) {
				down_drop++;
			} else {
				down_fwd++;
				(void)sendto(lfd, buf, (size_t)n, 0, (struct sockaddr *)&cl[i].addr, sizeof(cl[i].addr));
			}
		}
	}
	printf("relay clients %zu up %" PRIu64 "/%" PRIu64 " down %" PRIu64 "/%" PRIu64 "\n",
	    ncl, up_fwd, up_drop, down_fwd, down_drop);
	fflush(stdout);
	rc = 0;
fail:
	for (i = 0; i < ncl; i++)
		close(cl[i].fd);
	if (lfd >= 0)
		close(lfd);
	free(cl);
	free(pfd);
	return rc;
}
