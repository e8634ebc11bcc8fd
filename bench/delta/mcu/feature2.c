/* bench/delta/mcu/feature2.c - new in VERSION 2 of the corpus firmware and
 * linked first, so that everything after it moves: a sensor pipeline with
 * a calibration table, a filter and a CRC-16 over its frames. */
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

void uart_puts(const char *s);

static const int16_t calib[64] = {
	-812, -790, -765, -741, -716, -690, -663, -636, -608, -579, -550, -520,
	-490, -459, -428, -396, -364, -331, -298, -265, -231, -197, -163, -128,
	-93, -58, -23, 12, 47, 83, 118, 154, 190, 226, 262, 298, 334, 370, 406,
	442, 478, 514, 550, 585, 621, 656, 691, 726, 760, 794, 828, 861, 894,
	927, 959, 991, 1022, 1053, 1083, 1112, 1141, 1169, 1197, 1224,
};

static int32_t window[16];
static unsigned wpos;
static int enabled;
static unsigned period_ms = 250;

static uint16_t crc16_ccitt(const uint8_t *p, size_t n)
{
	uint16_t c = 0xffffu;
	while (n--) {
		c ^= (uint16_t)(*p++ << 8);
		for (int i = 0; i < 8; i++)
			c = (uint16_t)((c & 0x8000u) ? (c << 1) ^ 0x1021u : c << 1);
	}
	return c;
}

static int32_t calibrate(uint16_t raw)
{
	unsigned i = raw >> 10, f = raw & 1023u;
	if (i >= 63)
		return calib[63];
	return calib[i] + (int32_t)(((calib[i + 1] - calib[i]) * (int32_t)f) >> 10);
}

static int32_t filter(int32_t v)
{
	int64_t s = 0;
	window[wpos++ & 15u] = v;
	for (unsigned i = 0; i < 16; i++)
		s += window[i];
	return (int32_t)(s / 16);
}

int feature2_sample(uint16_t raw, uint8_t frame[8])
{
	int32_t v = filter(calibrate(raw));
	uint16_t c;
	frame[0] = 0xa5;
	frame[1] = (uint8_t)wpos;
	memcpy(frame + 2, &v, 4);
	c = crc16_ccitt(frame, 6);
	frame[6] = (uint8_t)(c >> 8);
	frame[7] = (uint8_t)c;
	return enabled;
}

int feature2_init(void)
{
	memset(window, 0, sizeof(window));
	wpos = 0;
	enabled = 1;
	uart_puts("sensor pipeline ready (calibration table rev C)\r\n");
	return 0;
}

int feature2_cmd(const char *arg)
{
	if (strcmp(arg, "off") == 0)
		enabled = 0;
	else if (strcmp(arg, "on") == 0)
		enabled = 1;
	else if (strncmp(arg, "period=", 7) == 0)
		period_ms = (unsigned)strtoul(arg + 7, NULL, 10);
	else {
		uart_puts("usage: feature on|off|period=MS\r\n");
		return -1;
	}
	return (int)period_ms < 0;
}
