/* bench/delta/mcu/xtlibc.c - the few C library functions the lx106 corpus
 * firmware needs (the Debian lx106 toolchain has no C library; an ESP8266
 * SDK would take them from its ROM and libmain). Headers: picolibc's. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *memcpy(void *d, const void *s, size_t n) { unsigned char *a = d; const unsigned char *b = s; while (n--) *a++ = *b++; return d; }
void *memmove(void *d, const void *s, size_t n)
{
	unsigned char *a = d; const unsigned char *b = s;
	if (a < b) while (n--) *a++ = *b++;
	else { a += n; b += n; while (n--) *--a = *--b; }
	return d;
}
void *memset(void *d, int c, size_t n) { unsigned char *a = d; while (n--) *a++ = (unsigned char)c; return d; }
int memcmp(const void *x, const void *y, size_t n)
{
	const unsigned char *a = x, *b = y;
	for (; n; n--, a++, b++) if (*a != *b) return *a - *b;
	return 0;
}
void *memchr(const void *s, int c, size_t n) { const unsigned char *a = s; for (; n; n--, a++) if (*a == (unsigned char)c) return (void *)a; return NULL; }
size_t strlen(const char *s) { const char *p = s; while (*p) p++; return (size_t)(p - s); }
size_t strnlen(const char *s, size_t m) { size_t n = 0; while (n < m && s[n]) n++; return n; }
int strcmp(const char *a, const char *b) { while (*a && *a == *b) a++, b++; return (unsigned char)*a - (unsigned char)*b; }
int strncmp(const char *a, const char *b, size_t n) { for (; n; n--, a++, b++) { if (*a != *b) return (unsigned char)*a - (unsigned char)*b; if (!*a) break; } return 0; }
char *strchr(const char *s, int c) { for (;; s++) { if (*s == (char)c) return (char *)s; if (!*s) return NULL; } }
char *strrchr(const char *s, int c) { const char *r = NULL; for (;; s++) { if (*s == (char)c) r = s; if (!*s) return (char *)r; } }
char *strcpy(char *d, const char *s) { char *r = d; while ((*d++ = *s++)) ; return r; }
char *strncpy(char *d, const char *s, size_t n) { char *r = d; for (; n && *s; n--) *d++ = *s++; while (n--) *d++ = 0; return r; }
char *strcat(char *d, const char *s) { strcpy(d + strlen(d), s); return d; }
char *strstr(const char *h, const char *n) { size_t l = strlen(n); for (; *h; h++) if (!strncmp(h, n, l)) return (char *)h; return l ? NULL : (char *)h; }
int toupper(int c) { return c >= 'a' && c <= 'z' ? c - 32 : c; }
int tolower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
int isdigit(int c) { return c >= '0' && c <= '9'; }
int isspace(int c) { return c == ' ' || (c >= 9 && c <= 13); }
unsigned long strtoul(const char *s, char **e, int base)
{
	unsigned long v = 0;
	if (!base) base = 10;
	for (;; s++) {
		int d = *s >= '0' && *s <= '9' ? *s - '0' : *s >= 'a' && *s <= 'z' ? *s - 'a' + 10 : *s >= 'A' && *s <= 'Z' ? *s - 'A' + 10 : 99;
		if (d >= base) break;
		v = v * (unsigned long)base + (unsigned long)d;
	}
	if (e) *e = (char *)s;
	return v;
}
long strtol(const char *s, char **e, int base) { return *s == '-' ? -(long)strtoul(s + 1, e, base) : (long)strtoul(s, e, base); }
int atoi(const char *s) { return (int)strtol(s, NULL, 10); }
void abort(void) { for (;;) ; }

/* a first-fit heap over the DRAM left after .bss */
extern char end[];
struct blk { size_t size; struct blk *next; };
static struct blk *freelist;
static char *brk_ptr;
void *malloc(size_t n)
{
	struct blk **pp, *b;
	n = (n + 7u) & ~(size_t)7u;
	for (pp = &freelist; (b = *pp); pp = &b->next)
		if (b->size >= n) { *pp = b->next; return b + 1; }
	if (!brk_ptr) brk_ptr = end;
	if ((size_t)(0x3FFFC000u - (uintptr_t)brk_ptr) < n + sizeof(*b)) return NULL;
	b = (struct blk *)brk_ptr;
	brk_ptr += sizeof(*b) + n;
	b->size = n;
	return b + 1;
}
void free(void *p) { struct blk *b; if (!p) return; b = (struct blk *)p - 1; b->next = freelist; freelist = b; }
void *calloc(size_t a, size_t b) { void *p = malloc(a * b); if (p) memset(p, 0, a * b); return p; }
void *realloc(void *o, size_t n)
{
	void *p;
	if (!o) return malloc(n);
	if (((struct blk *)o - 1)->size >= n) return o;
	p = malloc(n);
	if (p) { memcpy(p, o, ((struct blk *)o - 1)->size); free(o); }
	return p;
}
char *strdup(const char *s) { char *p = malloc(strlen(s) + 1); return p ? strcpy(p, s) : NULL; }

void uart_putc(char c);
static void put_num(char **o, char *lim, unsigned long v, unsigned base, int neg)
{
	char t[24]; int n = 0;
	do t[n++] = "0123456789abcdef"[v % base]; while ((v /= base));
	if (neg) t[n++] = '-';
	while (n--) { if (*o < lim) **o = t[n]; (*o)++; }
}
int vsnprintf(char *buf, size_t sz, const char *f, va_list ap)
{
	char *o = buf, *lim = sz ? buf + sz - 1 : buf;
	for (; *f; f++) {
		if (*f != '%') { if (o < lim) *o = *f; o++; continue; }
		switch (*++f) {
		case 'd': { int v = va_arg(ap, int); put_num(&o, lim, v < 0 ? -(unsigned long)v : (unsigned long)v, 10, v < 0); break; }
		case 'u': put_num(&o, lim, va_arg(ap, unsigned), 10, 0); break;
		case 'x': put_num(&o, lim, va_arg(ap, unsigned), 16, 0); break;
		case 'l': f++; put_num(&o, lim, va_arg(ap, unsigned long), *f == 'x' ? 16 : 10, 0); break;
		case 's': for (const char *s = va_arg(ap, const char *); *s; s++) { if (o < lim) *o = *s; o++; } break;
		default: if (o < lim) *o = *f; o++;
		}
	}
	if (sz) *(o < lim ? o : lim) = 0;
	return (int)(o - buf);
}
int sprintf(char *buf, const char *f, ...) { va_list ap; int n; va_start(ap, f); n = vsnprintf(buf, 256, f, ap); va_end(ap); return n; }
int snprintf(char *buf, size_t sz, const char *f, ...) { va_list ap; int n; va_start(ap, f); n = vsnprintf(buf, sz, f, ap); va_end(ap); return n; }
int vprintf(const char *f, va_list ap) { char b[128]; int n = vsnprintf(b, sizeof(b), f, ap); for (char *p = b; *p; p++) uart_putc(*p); return n; }
int printf(const char *f, ...) { va_list ap; int n; va_start(ap, f); n = vprintf(f, ap); va_end(ap); return n; }

/* hashtab.c's error path */
static int err_put(char c, FILE *f) { (void)f; uart_putc(c); return (unsigned char)c; }
static FILE err_file = FDEV_SETUP_STREAM(err_put, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stderr = &err_file;
int fprintf(FILE *fp, const char *f, ...) { va_list ap; int n; (void)fp; va_start(ap, f); n = vprintf(f, ap); va_end(ap); return n; }

/* picolibc's <ctype.h> macros index _ctype_ + 1 (char is unsigned on
 * Xtensa): _U 01, _L 02, _N 04, _S 010, _P 020, _C 040, _X 0100, _B 0200 */
const char _ctype_[1 + 256] = {
	[1 + 0 ... 1 + 8] = 040, [1 + 9 ... 1 + 13] = 040 | 010, [1 + 14 ... 1 + 31] = 040,
	[1 + ' '] = 010 | 0200, [1 + '!' ... 1 + '/'] = 020, [1 + '0' ... 1 + '9'] = 04,
	[1 + ':' ... 1 + '@'] = 020, [1 + 'A' ... 1 + 'F'] = 01 | 0100, [1 + 'G' ... 1 + 'Z'] = 01,
	[1 + '[' ... 1 + '`'] = 020, [1 + 'a' ... 1 + 'f'] = 02 | 0100, [1 + 'g' ... 1 + 'z'] = 02,
	[1 + '{' ... 1 + '~'] = 020, [1 + 127] = 040,
};
