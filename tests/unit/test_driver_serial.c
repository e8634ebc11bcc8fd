/* dg_driver_serial: the serial-model and device attribute checks that
 * give deltagated its start-up errors (issue 12). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dg_driver_serial.h"

static char why[256];

static int
model(const char *v)
{
	why[0] = '\0';
	return dg_serial_model_check(v, why, sizeof(why));
}

static int
dev(const char *v)
{
	why[0] = '\0';
	return dg_serial_device_check(v, why, sizeof(why));
}

static void
test_models_accepted(void **state)
{
	(void)state;
	assert_int_equal(model("a protocol=ymodem"), 0);
	assert_int_equal(model("b protocol=stm32 baud=57600 parity=even opt.enter=rts,-dtr,dtr"), 0);
	assert_int_equal(model("c protocol=smp version-send=fw\\x20version\\r "
	    "version-expect='fw: ([0-9.+]+)\\r' enter-send=mcuboot\\r chat-timeout=10"), 0);
	/* DTR/RTS steps with an exit sequence, quotes holding blanks */
	assert_int_equal(model("d protocol=ymodem enter-lines=-rts&dtr,,rts:-dtr "
	    "enter-send=x enter-expect='boot loader ready' done-expect='install ok' "
	    "fail-expect='install (failed|refused)' retries=0 rs485=yes rs485-delay-before=2"), 0);
}

static void
test_models_refused(void **state)
{
	(void)state;
	assert_int_equal(model(""), -1);
	assert_int_equal(model("protocol=ymodem"), -1);       /* no name */
	assert_int_equal(model("a"), -1);                     /* no protocol */
	assert_non_null(strstr(why, "protocol= (ymodem, stm32 or smp) is required"));
	assert_int_equal(model("a protocol=xmodem"), -1);
	assert_int_equal(model("a protocol=ymodem baud=12345"), -1);
	assert_non_null(strstr(why, "unsupported baud rate '12345'"));
	assert_int_equal(model("a protocol=ymodem version-expect='v ([0-9]+'"), -1);
	assert_non_null(strstr(why, "does not parse"));
	assert_int_equal(model("a protocol=ymodem version-expect=version"), -1);
	assert_non_null(strstr(why, "exactly one capture group"));
	assert_int_equal(model("a protocol=ymodem version-send=v\\r"), -1);
	assert_non_null(strstr(why, "without version-expect"));
	assert_int_equal(model("a protocol=ymodem enter-expect=C"), -1);
	assert_int_equal(model("a protocol=ymodem enter-lines=dtr,boot0"), -1);
	assert_non_null(strstr(why, "'boot0'"));
	assert_int_equal(model("a protocol=ymodem version-expect='(x)"), -1);
	assert_non_null(strstr(why, "unterminated quote"));
	assert_int_equal(model("a protocol=ymodem enter-send=\\xZZ"), -1);
	assert_int_equal(model("a protocol=ymodem retries=-1"), -1);
	assert_int_equal(model("a protocol=ymodem chat-timeout=0"), -1);
	assert_int_equal(model("a protocol=ymodem parity=mark"), -1);
	assert_int_equal(model("a protocol=ymodem nosuch=1"), -1);
	assert_non_null(strstr(why, "unknown serial-model key 'nosuch'"));
	/* the engine checks its options */
	assert_int_equal(model("a protocol=stm32 opt.nosuch=1"), -1);
	assert_non_null(strstr(why, "stm32 engine"));
	assert_int_equal(model("a protocol=ymodem flag"), -1);
}

static void
test_devices(void **state)
{
	(void)state;
	assert_int_equal(dev("tty=/dev/null model=a"), 0);
	assert_int_equal(dev("tty=/dev/null model=a baud=921600 parity=odd stop-bits=2 flow=rtscts"), 0);
	assert_int_equal(dev("tty=/nonexistent/ttyUSB0 model=a hotplug=yes"), 0);
	assert_int_equal(dev("tty=/nonexistent/ttyUSB0 model=a"), -1);
	assert_non_null(strstr(why, "No such file"));
	assert_int_equal(dev("tty=/etc/passwd model=a"), -1);
	assert_non_null(strstr(why, "not a character device"));
	assert_int_equal(dev("tty=/dev/null"), -1);
	assert_int_equal(dev("model=a"), -1);
	assert_int_equal(dev("tty=/dev/null model=a baud=7"), -1);
	assert_non_null(strstr(why, "unsupported baud rate '7'"));
	assert_int_equal(dev("tty=/dev/null model=a data-bits=9"), -1);
	assert_int_equal(dev("tty=/dev/null model=a hotplug=maybe"), -1);
	assert_int_equal(dev("tty=/dev/null model=a color=red"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_models_accepted),
		cmocka_unit_test(test_models_refused),
		cmocka_unit_test(test_devices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
