/* dg_driver_serial - the serial driver of deltagated (issue 12): devices on
 * ttys (RS-232, RS-485, USB serial, ptys) updated through one of the
 * dg_sproto engines (ymodem, stm32, smp), wrapped in a chat script per
 * device model (read the version, enter the bootloader, wait for what the
 * device prints after its install, read the version again).
 *
 * Configuration (docs/serial.md, "The serial driver in deltagated"):
 *   serial-model NAME protocol=ymodem|stm32|smp [key=value]...
 *   device ID driver=serial tty=PATH model=NAME [baud=..] [link=BUS] ...
 * A value may be 'single quoted' (to hold blanks) and takes the C escapes
 * \r \n \t \\ \' \xHH; other backslashes stay (regular expressions).
 *
 * One delivery = up to 1 + retries attempts; an attempt opens the line,
 * chats, runs the engine, waits for the install and reads the version. A
 * line that vanished or a device that stopped answering is reopened after
 * a backoff (reopen-delay, doubling, at most 8 s) and the attempt is run
 * again from the start.
 *
 * Result codes: the engines' DG_SPROTO_EXT_* (0x90D00001..9) and those
 * below, all facility 0x9 component 0x0D.
 */
#ifndef DG_DRIVER_SERIAL_H
#define DG_DRIVER_SERIAL_H

#include <stddef.h>

#include <event2/event.h>

#include "dg_driver.h"
#include "dg_sproto.h"

#define DG_SERIAL_EXT_INSTALL_FAILED DG_SPROTO_EXT(0x010u) /* fail-expect matched */
#define DG_SERIAL_EXT_VERSION        DG_SPROTO_EXT(0x011u) /* version read after install is not the target's */
#define DG_SERIAL_EXT_NO_LINE        DG_SPROTO_EXT(0x012u) /* the tty could not be opened (missing, busy) */
#define DG_SERIAL_EXT_CONFIG         DG_SPROTO_EXT(0x013u) /* the device's model is unusable */

/* Validator of a "serial-model" value: 0, or -1 with one line in why
 * (unknown key, bad number, unsupported baud, a regex that does not
 * compile or lacks its capture group, options the engine refuses). */
int dg_serial_model_check(const char *value, char *why, size_t whylen);

/* Validator of a device's serial attributes ("tty=.. model=.. baud=.."
 * as one string): keys tty, model, baud, data-bits, parity, stop-bits,
 * flow, rs485, rs485-delay-before, rs485-delay-after, lock-dir, hotplug.
 * A tty that does not exist is an error unless hotplug=yes. */
int dg_serial_device_check(const char *attrs, char *why, size_t whylen);

/* The driver, holding the models (each a serial-model value); NULL and
 * *err: DG_ERR_CONFIG_VALUE (a model that does not parse, two models of
 * one name; logged), DG_ERR_NOMEM. */
dg_driver *dg_driver_serial_new(struct event_base *base, const char *const *models,
    size_t nmodels, dg_err *err);

/* Adds (or, on reload, replaces) the device id with its serial
 * attributes. DG_ERR_CONFIG_VALUE (logged: bad attributes, unknown
 * model), DG_ERR_NOMEM. */
dg_err dg_driver_serial_add_device(dg_driver *drv, const char *id, const char *attrs);

#endif
