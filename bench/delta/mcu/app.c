/* bench/delta/mcu/app.c - the hand-written part of the corpus firmware:
 * start-up (Cortex-M vector table / reset handler, RISC-V and Xtensa entry),
 * a UART console, a command table, and the calls into the real libraries
 * linked beside it (zlib, libiberty's demanglers, regex, md5, sha1, hashtab).
 * VERSION 2 is a maintenance release of VERSION 1: changed constants, two
 * functions changed, new strings, a new command; the functions inserted
 * near the start of the image live in feature2.c (linked first). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include "zlib.h"
#include "demangle.h"
#include "md5.h"
#include "sha1.h"
#include "hashtab.h"
#include "xregex.h"

#ifndef VERSION
#define VERSION 1
#endif

#if VERSION >= 2
#define FW_VERSION "2.4.1"
#define UART_BAUD 921600u
#define RX_RING 512u
#define WATCHDOG_MS 2500u
#else
#define FW_VERSION "2.3.7"
#define UART_BAUD 115200u
#define RX_RING 256u
#define WATCHDOG_MS 2000u
#endif

#if defined(__arm__)
#define UART_BASE 0x40002000u
#elif defined(__riscv)
#define UART_BASE 0x60000000u
#else
#define UART_BASE 0x60000000u
#endif
#define UART_DR (*(volatile uint32_t *)(UART_BASE + 0x00u))
#define UART_SR (*(volatile uint32_t *)(UART_BASE + 0x04u))
#define UART_BRR (*(volatile uint32_t *)(UART_BASE + 0x08u))

int gen_main(int argc, char **argv);
#if VERSION >= 2
int feature2_init(void);
int feature2_cmd(const char *arg);
#endif

static volatile uint32_t ticks;
static char rx_ring[RX_RING];
static unsigned rx_head, rx_tail;
static unsigned char zbuf[4096];
static unsigned char zout[4096];

void uart_putc(char c)
{
	while (UART_SR & 0x80u)
		;
	UART_DR = (uint32_t)(unsigned char)c;
}

void uart_puts(const char *s)
{
	while (*s)
		uart_putc(*s++);
}

static void uart_hex(uint32_t v)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 28; i >= 0; i -= 4)
		uart_putc(hex[(v >> i) & 15u]);
}

static int uart_getc(void)
{
	if (rx_head == rx_tail) {
		if (!(UART_SR & 0x01u))
			return -1;
		rx_ring[rx_head++ % RX_RING] = (char)UART_DR;
	}
	return (unsigned char)rx_ring[rx_tail++ % RX_RING];
}

static int cmd_version(const char *arg)
{
	(void)arg;
	uart_puts("fw " FW_VERSION " zlib ");
	uart_puts(zlibVersion());
#if VERSION >= 2
	uart_puts(" build 2026-11-30 (LTS)\r\n");
#else
	uart_puts(" build 2026-09-14\r\n");
#endif
	return 0;
}

static int cmd_deflate(const char *arg)
{
	uLongf n = sizeof(zout);
	size_t len = strlen(arg);
	if (len > sizeof(zbuf))
		len = sizeof(zbuf);
	memcpy(zbuf, arg, len);
#if VERSION >= 2
	if (compress2(zout, &n, zbuf, (uLong)len, 9) != Z_OK) {
		uart_puts("deflate: buffer too small\r\n");
		return -1;
	}
#else
	if (compress(zout, &n, zbuf, (uLong)len) != Z_OK)
		return -1;
#endif
	uart_hex((uint32_t)n);
	uart_puts(" bytes\r\n");
	n = sizeof(zbuf);
	return uncompress(zbuf, &n, zout, (uLong)n) == Z_OK ? 0 : -1;
}

static int cmd_demangle(const char *arg)
{
	char *s = cplus_demangle(arg, DMGL_PARAMS | DMGL_ANSI);
	if (!s)
		s = rust_demangle(arg, DMGL_PARAMS);
	if (!s) {
		uart_puts("not a mangled name\r\n");
		return -1;
	}
	uart_puts(s);
	uart_puts("\r\n");
	free(s);
	return 0;
}

static int cmd_digest(const char *arg)
{
	unsigned char d[20];
	struct sha1_ctx c;
	md5_buffer(arg, strlen(arg), d);
	for (int i = 0; i < 16; i++)
		uart_hex(d[i]);
	sha1_init_ctx(&c);
	sha1_process_bytes(arg, strlen(arg), &c);
	sha1_finish_ctx(&c, d);
	for (int i = 0; i < 20; i++)
		uart_hex(d[i]);
	uart_puts("\r\n");
	return 0;
}

static int cmd_match(const char *arg)
{
	regex_t re;
	int rc = xregcomp(&re, "^[a-z]+=[0-9]+$", REG_EXTENDED | REG_NOSUB);
	if (rc)
		return -1;
	rc = xregexec(&re, arg, 0, NULL, 0);
	xregfree(&re);
	uart_puts(rc ? "no match\r\n" : "match\r\n");
	return rc ? -1 : 0;
}

static htab_t names;

static int cmd_set(const char *arg)
{
	void **slot;
	if (!names)
		names = htab_create_alloc(31, htab_hash_string, htab_eq_string, free, calloc, free);
	slot = htab_find_slot(names, arg, INSERT);
	if (!slot)
		return -1;
	if (!*slot)
		*slot = strdup(arg);
	return 0;
}

static int cmd_bench(const char *arg)
{
	(void)arg;
	uart_hex((uint32_t)gen_main(1, NULL));
	uart_puts("\r\n");
	return 0;
}

struct cmd {
	const char *name;
	int (*fn)(const char *arg);
	const char *help;
};

static const struct cmd cmds[] = {
	{ "version", cmd_version, "print the firmware and library versions" },
	{ "deflate", cmd_deflate, "compress the argument with zlib" },
	{ "demangle", cmd_demangle, "demangle a C++ or Rust symbol" },
	{ "digest", cmd_digest, "MD5 and SHA-1 of the argument" },
	{ "match", cmd_match, "check a key=value pair" },
	{ "set", cmd_set, "remember a name" },
	{ "bench", cmd_bench, "run the number cruncher" },
#if VERSION >= 2
	{ "feature", feature2_cmd, "configure the new sensor pipeline" },
#endif
};

static void dispatch(char *line)
{
	char *arg = strchr(line, ' ');
	if (arg)
		*arg++ = '\0';
	else
		arg = line + strlen(line);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmds[i].name, line) == 0) {
			if (cmds[i].fn(arg) != 0)
				uart_puts("error\r\n");
			return;
		}
#if VERSION >= 2
	uart_puts("unknown command; try 'help' or 'feature'\r\n");
#else
	uart_puts("unknown command\r\n");
#endif
}

int main(void)
{
	char line[128];
	unsigned n = 0;
	UART_BRR = 48000000u / UART_BAUD;
	cmd_version("");
#if VERSION >= 2
	feature2_init();
#endif
	for (;;) {
		int c = uart_getc();
		if (c < 0) {
			if (ticks > WATCHDOG_MS)
				ticks = 0;
			continue;
		}
		if (c == '\r' || c == '\n' || n == sizeof(line) - 1) {
			line[n] = '\0';
			if (n)
				dispatch(line);
			n = 0;
		} else
			line[n++] = (char)c;
	}
}

/* libiberty's allocation wrappers */
void *xmalloc(size_t n) { void *p = malloc(n); if (!p) abort(); return p; }
void *xcalloc(size_t a, size_t b) { void *p = calloc(a, b); if (!p) abort(); return p; }
void *xrealloc(void *o, size_t n) { void *p = realloc(o, n); if (!p) abort(); return p; }
char *xstrdup(const char *s) { return strcpy(xmalloc(strlen(s) + 1), s); }
void xmalloc_failed(size_t n) { (void)n; abort(); }

#if defined(__arm__)
extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _estack[];
void Reset_Handler(void);
static void Default_Handler(void) { for (;;) ; }
void SysTick_Handler(void) { ticks++; }
void Reset_Handler(void)
{
	uint32_t *s = _sidata, *d = _sdata;
	while (d < _edata)
		*d++ = *s++;
	for (d = _sbss; d < _ebss; d++)
		*d = 0;
	main();
}
__attribute__((section(".vectors"), used))
void (*const vectors[16 + 32])(void) = {
	(void (*)(void))_estack, Reset_Handler, Default_Handler, Default_Handler,
	Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0,
	Default_Handler, Default_Handler, 0, Default_Handler, SysTick_Handler,
	[16 ... 47] = Default_Handler,
};
#endif

#if defined(__riscv)
#include <stdio.h>
extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[];
void c_start(void);
void _exit(int code) { (void)code; for (;;) ; }
int getpid(void) { return 1; }
int kill(int pid, int sig) { (void)pid; (void)sig; for (;;) ; }
static int uart_file_putc(char c, FILE *f) { (void)f; uart_putc(c); return (unsigned char)c; }
static FILE uart_file = FDEV_SETUP_STREAM(uart_file_putc, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stdout = &uart_file;
FILE *const stderr = &uart_file;
__attribute__((section(".init"), naked, used)) void _start(void)
{
	__asm__ volatile(".option push\n.option norelax\nla gp, __global_pointer$\n"
			 ".option pop\nla sp, __stack\ntail c_start\n"); /* tail: c_start may be out of JAL range (ESP32-C3: IRAM to IROM) */
}
void c_start(void)
{
	uint32_t *s = _sidata, *d = _sdata;
	if (s != d)
		while (d < _edata)
			*d++ = *s++;
	for (d = _sbss; d < _ebss; d++)
		*d = 0;
	main();
}
#endif

#if defined(__XTENSA__)
extern uint32_t _sbss[], _ebss[];
__attribute__((section(".entry.text"), used)) void call_user_start(void)
{
	for (uint32_t *d = _sbss; d < _ebss; d++)
		*d = 0;
	main();
}
#endif
