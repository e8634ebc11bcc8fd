/* dg_driver - the downstream driver interface: hand an image to a device,
 * learn its result and version, report progress.
 *
 * A driver instance serves every device of its kind. deliver() starts one
 * delivery and returns at once; the driver then calls the events from the
 * loop thread: progress (any number of times), then done (exactly once,
 * unless the delivery is canceled first). Event callbacks must not call
 * dg_driver_free(); they may cancel other deliveries.
 *
 * Extended result codes of drivers use facility 0x9, component 0x0B
 * (downstream driver, our own): 0x90B00000 | code (see docs/gateway.md).
 */
#ifndef DG_DRIVER_H
#define DG_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "dg_err.h"

#define DG_DRIVER_EXT(code) (0x90B00000u | ((uint32_t)(code) & 0xFFFFFu))
#define DG_DRIVER_EXT_EXIT(st) DG_DRIVER_EXT(0x00000u | ((st) & 0xFF))     /* exit status */
#define DG_DRIVER_EXT_SIGNAL(sig) DG_DRIVER_EXT(0x00100u | ((sig) & 0xFF)) /* killed by signal */
#define DG_DRIVER_EXT_TIMEOUT DG_DRIVER_EXT(0x00200u)                    /* stage timed out */
#define DG_DRIVER_EXT_SPAWN DG_DRIVER_EXT(0x00201u)                      /* could not start */
#define DG_DRIVER_EXT_CANCELED DG_DRIVER_EXT(0x00202u)

typedef struct dg_driver dg_driver;
typedef struct dg_delivery dg_delivery;

typedef enum dg_delivery_stage {
	DG_DELIVERY_TRANSFERRING = 1,
	DG_DELIVERY_INSTALLING = 2
} dg_delivery_stage;

typedef struct dg_delivery_req {
	const char *device_id;
	const char *address;     /* driver-specific, may be NULL */
	const char *job_id;
	const char *image_path;  /* the cached image (read-only) */
	uint64_t image_size;
	const char *sha256_hex;  /* of the image */
	const char *version;     /* the version it holds */
	int timeout_s;           /* whole delivery; 0: driver default */
} dg_delivery_req;

typedef struct dg_delivery_events {
	void (*progress)(void *arg, dg_delivery_stage stage, uint64_t done, uint64_t total);
	/* ok: installed; version: what the device reports running now
	 * (NULL: unknown); ext: extended result code when !ok; detail: a
	 * line for the log (may be NULL). */
	void (*done)(void *arg, int ok, const char *version, uint32_t ext, const char *detail);
} dg_delivery_events;

struct dg_driver_ops {
	const char *name;
	dg_delivery *(*deliver)(dg_driver *drv, const dg_delivery_req *req,
	    const dg_delivery_events *ev, void *arg, dg_err *err);
	void (*cancel)(dg_delivery *d);
	void (*free)(dg_driver *drv);
};

struct dg_driver {
	const struct dg_driver_ops *ops;
};

static inline void
dg_driver_free(dg_driver *drv)
{
	if (drv)
		drv->ops->free(drv);
}

/* The exec driver: runs command through /bin/sh for each delivery with
 * DG_IMAGE, DG_IMAGE_SIZE, DG_DEVICE, DG_ADDRESS, DG_JOB, DG_SHA256 and
 * DG_VERSION in its environment. Lines it prints on stdout:
 * "progress <done> <total>" or "progress <percent>%", "installing",
 * "version <v>". Exit 0 = installed. default_timeout_s bounds a delivery.
 * NULL and *err = DG_ERR_INVAL for an empty command, NOMEM. */
dg_driver *dg_driver_exec_new(struct event_base *base, const char *command,
    int default_timeout_s, dg_err *err);

#endif
