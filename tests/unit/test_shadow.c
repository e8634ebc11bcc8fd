/* Unit tests: dg_shadow (table-driven).
 *
 * Each row of `cases` applies its prior updates (at times 100, 101, ...) to
 * a fresh shadow, then the request at time 200, and compares the outcome as
 * JSON (json_equal) with the expected fragments. In rows, JSON is written
 * with ' for " (q() converts); payloads flagged raw are taken verbatim.
 * A "%s%s" in a prior or payload is replaced by open*n and close*n.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dg_json.h"
#include "dg_shadow.h"

#define T_REQ 200
#define NONE "-" /* expected absent (no delta message / empty delta) */

struct ucase {
	const char *name;
	const char *prior[4];
	const char *payload;
	int code;
	const char *state;     /* document "state" after */
	const char *metadata;  /* document "metadata" after */
	int64_t version;       /* after; 0 = not checked */
	const char *delta;     /* update/delta "state", or NONE */
	const char *dstate;    /* dg_shadow_delta_state after, or NONE */
	const char *accepted;  /* whole update/accepted message */
	const char *documents; /* whole update/documents message */
	const char *error;     /* whole error message */
	int raw;               /* payload verbatim (bytes that ' would spoil) */
	size_t rawlen;         /* raw payload length when it holds NULs; 0 = strlen */
	int n;                 /* repetitions for %s%s */
	const char *open, *close;
};

#define TOK64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID64 "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii"

static const struct ucase cases[] = {
	/* --- merges */
	{ .name = "create desired on a new shadow",
	  .payload = "{'state':{'desired':{'color':'red'}}}",
	  .state = "{'desired':{'color':'red'}}",
	  .metadata = "{'desired':{'color':{'timestamp':200}}}", .version = 1,
	  .delta = "{'color':'red'}",
	  .accepted = "{'state':{'desired':{'color':'red'}},'metadata':{'desired':{'color':{'timestamp':200}}},'version':1,'timestamp':200}" },
	{ .name = "merge adds a key, untouched leaf keeps its timestamp",
	  .prior = { "{'state':{'desired':{'a':1}}}" },
	  .payload = "{'state':{'desired':{'b':2}}}",
	  .state = "{'desired':{'a':1,'b':2}}",
	  .metadata = "{'desired':{'a':{'timestamp':100},'b':{'timestamp':200}}}", .version = 2,
	  .accepted = "{'state':{'desired':{'b':2}},'metadata':{'desired':{'b':{'timestamp':200}}},'version':2,'timestamp':200}" },
	{ .name = "merge overwrites a scalar, gets the new time",
	  .prior = { "{'state':{'desired':{'a':1,'b':1}}}" },
	  .payload = "{'state':{'desired':{'a':2}}}",
	  .state = "{'desired':{'a':2,'b':1}}",
	  .metadata = "{'desired':{'a':{'timestamp':200},'b':{'timestamp':100}}}", .version = 2 },
	{ .name = "nested objects merge recursively",
	  .prior = { "{'state':{'desired':{'l':{'c':{'r':1,'g':2}}}}}" },
	  .payload = "{'state':{'desired':{'l':{'c':{'g':3},'on':true}}}}",
	  .state = "{'desired':{'l':{'c':{'r':1,'g':3},'on':true}}}",
	  .metadata = "{'desired':{'l':{'c':{'r':{'timestamp':100},'g':{'timestamp':200}},'on':{'timestamp':200}}}}" },
	{ .name = "a scalar is replaced by an object",
	  .prior = { "{'state':{'desired':{'a':1,'b':1}}}" },
	  .payload = "{'state':{'desired':{'a':{'x':1}}}}",
	  .state = "{'desired':{'a':{'x':1},'b':1}}",
	  .metadata = "{'desired':{'a':{'x':{'timestamp':200}},'b':{'timestamp':100}}}" },
	{ .name = "an object is replaced by a scalar",
	  .prior = { "{'state':{'desired':{'a':{'x':1,'y':2}}}}" },
	  .payload = "{'state':{'desired':{'a':5}}}",
	  .state = "{'desired':{'a':5}}",
	  .metadata = "{'desired':{'a':{'timestamp':200}}}" },
	{ .name = "arrays are replaced whole",
	  .prior = { "{'state':{'desired':{'c':['r','g','b'],'k':1}}}" },
	  .payload = "{'state':{'desired':{'c':['r']}}}",
	  .state = "{'desired':{'c':['r'],'k':1}}",
	  .metadata = "{'desired':{'c':[{'timestamp':200}],'k':{'timestamp':100}}}" },
	{ .name = "array metadata mirrors each element (AWS)",
	  .payload = "{'state':{'reported':{'c':[1,{'x':2},[3,'y']]}}}",
	  .state = "{'reported':{'c':[1,{'x':2},[3,'y']]}}",
	  .metadata = "{'reported':{'c':[{'timestamp':200},{'x':{'timestamp':200}},[{'timestamp':200},{'timestamp':200}]]}}",
	  .delta = NONE, .dstate = NONE },
	{ .name = "an empty array is a value",
	  .prior = { "{'state':{'reported':{'c':[1,2]}}}" },
	  .payload = "{'state':{'reported':{'c':[]}}}",
	  .state = "{'reported':{'c':[]}}", .metadata = "{'reported':{'c':[]}}" },
	{ .name = "an array replaces an object",
	  .prior = { "{'state':{'desired':{'a':{'x':1}}}}" },
	  .payload = "{'state':{'desired':{'a':[1]}}}",
	  .state = "{'desired':{'a':[1]}}", .metadata = "{'desired':{'a':[{'timestamp':200}]}}" },
	{ .name = "reported update leaves desired alone, sends no delta",
	  .prior = { "{'state':{'desired':{'a':1}}}" },
	  .payload = "{'state':{'reported':{'b':2}}}",
	  .state = "{'desired':{'a':1},'reported':{'b':2}}",
	  .metadata = "{'desired':{'a':{'timestamp':100}},'reported':{'b':{'timestamp':200}}}",
	  .version = 2, .delta = NONE, .dstate = "{'a':1}" },
	{ .name = "both sections in one request",
	  .payload = "{'state':{'desired':{'a':1,'b':2},'reported':{'a':1}}}",
	  .state = "{'desired':{'a':1,'b':2},'reported':{'a':1}}",
	  .metadata = "{'desired':{'a':{'timestamp':200},'b':{'timestamp':200}},'reported':{'a':{'timestamp':200}}}",
	  .delta = "{'b':2}" },
	{ .name = "unicode keys and values are kept",
	  .payload = "{'state':{'desired':{'\xc3\xa9t\xc3\xa9':'\xe2\x82\xac \xf0\x9f\x98\x80'}}}",
	  .state = "{'desired':{'\xc3\xa9t\xc3\xa9':'\xe2\x82\xac \xf0\x9f\x98\x80'}}" },

	/* --- null deletes */
	{ .name = "null deletes a leaf and its metadata",
	  .prior = { "{'state':{'desired':{'a':1,'b':2}}}" },
	  .payload = "{'state':{'desired':{'a':null}}}",
	  .state = "{'desired':{'b':2}}", .metadata = "{'desired':{'b':{'timestamp':100}}}",
	  .accepted = "{'state':{'desired':{'a':null}},'metadata':{'desired':{'a':{'timestamp':200}}},'version':2,'timestamp':200}" },
	{ .name = "null deletes a subtree",
	  .prior = { "{'state':{'desired':{'l':{'c':{'r':1,'g':2},'on':true}}}}" },
	  .payload = "{'state':{'desired':{'l':{'c':null}}}}",
	  .state = "{'desired':{'l':{'on':true}}}", .metadata = "{'desired':{'l':{'on':{'timestamp':100}}}}" },
	{ .name = "null deletes a top-level object",
	  .prior = { "{'state':{'desired':{'l':{'c':1},'x':1}}}" },
	  .payload = "{'state':{'desired':{'l':null}}}",
	  .state = "{'desired':{'x':1}}", .metadata = "{'desired':{'x':{'timestamp':100}}}" },
	{ .name = "desired null deletes all desired",
	  .prior = { "{'state':{'desired':{'a':1,'n':{'m':2}},'reported':{'b':2}}}" },
	  .payload = "{'state':{'desired':null}}",
	  .state = "{'reported':{'b':2}}", .metadata = "{'reported':{'b':{'timestamp':100}}}",
	  .dstate = NONE, .delta = NONE,
	  .accepted = "{'state':{'desired':null},'metadata':{'desired':{'timestamp':200}},'version':2,'timestamp':200}" },
	{ .name = "reported null deletes all reported",
	  .prior = { "{'state':{'desired':{'a':1},'reported':{'a':1,'b':2}}}" },
	  .payload = "{'state':{'reported':null}}",
	  .state = "{'desired':{'a':1}}", .metadata = "{'desired':{'a':{'timestamp':100}}}",
	  .dstate = "{'a':1}", .delta = NONE },
	{ .name = "deleting the last key drops the section",
	  .prior = { "{'state':{'desired':{'a':1}}}" },
	  .payload = "{'state':{'desired':{'a':null}}}",
	  .state = "{}", .metadata = "{}", .version = 2, .delta = NONE, .dstate = NONE },
	{ .name = "null for a missing key changes nothing but the version",
	  .prior = { "{'state':{'desired':{'a':1}}}" },
	  .payload = "{'state':{'desired':{'zz':null}}}",
	  .state = "{'desired':{'a':1}}", .metadata = "{'desired':{'a':{'timestamp':100}}}", .version = 2 },
	{ .name = "null inside a new object deletes nothing",
	  .payload = "{'state':{'desired':{'n':{'x':null,'y':1}}}}",
	  .state = "{'desired':{'n':{'y':1}}}", .metadata = "{'desired':{'n':{'y':{'timestamp':200}}}}" },
	{ .name = "desired null on a new shadow creates it empty",
	  .payload = "{'state':{'desired':null}}",
	  .state = "{}", .metadata = "{}", .version = 1,
	  .documents = "{'previous':null,'current':{'state':{},'metadata':{},'version':1},'timestamp':200}" },
	{ .name = "empty state is accepted (AWS), version grows",
	  .prior = { "{'state':{'reported':{'a':1}}}" },
	  .payload = "{'state':{}}",
	  .state = "{'reported':{'a':1}}", .version = 2,
	  .accepted = "{'state':{},'metadata':{},'version':2,'timestamp':200}" },

	/* --- versions */
	{ .name = "matching version is accepted",
	  .prior = { "{'state':{'desired':{'a':1}}}", "{'state':{'desired':{'a':2}}}" },
	  .payload = "{'state':{'desired':{'a':3}},'version':2}",
	  .state = "{'desired':{'a':3}}", .version = 3 },
	{ .name = "version 0 matches a new shadow",
	  .payload = "{'state':{'desired':{'a':1}},'version':0}", .version = 1 },
	{ .name = "each accepted update adds one",
	  .prior = { "{'state':{'desired':{'a':1}}}", "{'state':{'reported':{'a':1}}}",
	      "{'state':{'desired':{'a':null}}}" },
	  .payload = "{'state':{'reported':{'b':1}}}", .version = 4 },
	{ .name = "version ahead: 409, token echoed",
	  .prior = { "{'state':{'desired':{'a':1}}}" },
	  .payload = "{'state':{'desired':{'a':2}},'version':5,'clientToken':'t9'}",
	  .code = 409, .error = "{'code':409,'message':'Version conflict','clientToken':'t9'}" },
	{ .name = "stale version: 409",
	  .prior = { "{'state':{'desired':{'a':1}}}", "{'state':{'desired':{'a':2}}}" },
	  .payload = "{'state':{'desired':{'a':3}},'version':1}",
	  .code = 409, .error = "{'code':409,'message':'Version conflict'}" },
	{ .name = "version as a string: 400",
	  .payload = "{'state':{'desired':{'a':1}},'version':'0'}",
	  .code = 400, .error = "{'code':400,'message':'Invalid version'}" },
	{ .name = "version as a real: 400",
	  .payload = "{'state':{'desired':{'a':1}},'version':0.0,'clientToken':'r'}",
	  .code = 400, .error = "{'code':400,'message':'Invalid version','clientToken':'r'}" },
	{ .name = "negative version: 400",
	  .payload = "{'state':{'desired':{'a':1}},'version':-1}",
	  .code = 400, .error = "{'code':400,'message':'Invalid version'}" },

	/* --- 400: the request's form */
	{ .name = "invalid JSON",
	  .prior = { "{'state':{'desired':{'a':1}}}" },
	  .payload = "{'state':", .code = 400, .error = "{'code':400,'message':'Invalid JSON'}" },
	{ .name = "empty payload",
	  .payload = "", .code = 400, .error = "{'code':400,'message':'Invalid JSON'}" },
	{ .name = "JSON that is not an object",
	  .payload = "[{'state':{}}]", .code = 400, .error = "{'code':400,'message':'Invalid JSON'}" },
	{ .name = "duplicate keys",
	  .payload = "{'state':{'desired':{'a':1,'a':2}}}", .code = 400,
	  .error = "{'code':400,'message':'Invalid JSON'}" },
	{ .name = "trailing bytes after the object",
	  .payload = "{'state':{}} x", .code = 400, .error = "{'code':400,'message':'Invalid JSON'}" },
	{ .name = "a NUL byte inside",
	  .payload = "{\"state\":{}}\0", .raw = 1, .rawlen = 13, .code = 400,
	  .error = "{'code':400,'message':'Invalid JSON'}" },
	{ .name = "missing state, token echoed",
	  .payload = "{'clientToken':'t1','desired':{'a':1}}", .code = 400,
	  .error = "{'code':400,'message':'Missing required node: state','clientToken':'t1'}" },
	{ .name = "state is a number",
	  .payload = "{'state':5}", .code = 400,
	  .error = "{'code':400,'message':'State node must be an object'}" },
	{ .name = "state is null",
	  .payload = "{'state':null}", .code = 400,
	  .error = "{'code':400,'message':'State node must be an object'}" },
	{ .name = "state is an array",
	  .payload = "{'state':[{'desired':{}}]}", .code = 400,
	  .error = "{'code':400,'message':'State node must be an object'}" },
	{ .name = "desired is not an object",
	  .payload = "{'state':{'desired':5}}", .code = 400,
	  .error = "{'code':400,'message':'Desired node must be an object'}" },
	{ .name = "reported is an array",
	  .payload = "{'state':{'reported':[1]}}", .code = 400,
	  .error = "{'code':400,'message':'Reported node must be an object'}" },
	{ .name = "state holds another member",
	  .payload = "{'state':{'desired':{'a':1},'delta':{'a':1}}}", .code = 400,
	  .error = "{'code':400,'message':'State contains an invalid node'}" },
	{ .name = "unknown top-level members are ignored (AWS)",
	  .payload = "{'state':{'desired':{'a':1}},'metadata':{'x':1},'foo':[1]}",
	  .state = "{'desired':{'a':1}}",
	  .accepted = "{'state':{'desired':{'a':1}},'metadata':{'desired':{'a':{'timestamp':200}}},'version':1,'timestamp':200}" },
	{ .name = "null inside an array",
	  .payload = "{'state':{'desired':{'c':[null,'red']}}}", .code = 400,
	  .error = "{'code':400,'message':'Arrays cannot contain null values'}" },
	{ .name = "null in an object inside an array",
	  .payload = "{'state':{'reported':{'c':[{'a':null}]}},'clientToken':'n'}", .code = 400,
	  .error = "{'code':400,'message':'Arrays cannot contain null values','clientToken':'n'}" },

	/* --- 400: clientToken */
	{ .name = "clientToken of 64 bytes is accepted and echoed",
	  .payload = "{'state':{'desired':{'a':1}},'clientToken':'" TOK64 "'}",
	  .accepted = "{'state':{'desired':{'a':1}},'metadata':{'desired':{'a':{'timestamp':200}}},'version':1,'timestamp':200,'clientToken':'" TOK64 "'}" },
	{ .name = "clientToken of 65 bytes: 400, not echoed",
	  .payload = "{'state':{'desired':{'a':1}},'clientToken':'" TOK64 "b'}", .code = 400,
	  .error = "{'code':400,'message':'Invalid clientToken'}" },
	{ .name = "clientToken of 64 bytes of UTF-8 counted in bytes",
	  .payload = "{'state':{},'clientToken':'" TOK64 "\xc3\xa9'}", .code = 400,
	  .error = "{'code':400,'message':'Invalid clientToken'}" },
	{ .name = "clientToken not a string",
	  .payload = "{'state':{'desired':{'a':1}},'clientToken':12}", .code = 400,
	  .error = "{'code':400,'message':'Invalid clientToken'}" },

	/* --- 400: nesting, encoding, size */
	{ .name = "six levels of keys are accepted",
	  .payload = "{'state':{'desired':{'a':{'b':{'c':{'d':{'e':{'f':1}}}}}}}}",
	  .state = "{'desired':{'a':{'b':{'c':{'d':{'e':{'f':1}}}}}}}" },
	{ .name = "seven levels: 400, token echoed",
	  .payload = "{'clientToken':'d','state':{'desired':{'a':{'b':{'c':{'d':{'e':{'f':{'g':1}}}}}}}}}",
	  .code = 400,
	  .error = "{'code':400,'message':'JSON contains too many levels of nesting; maximum is 6','clientToken':'d'}" },
	{ .name = "arrays count as levels",
	  .payload = "{'state':{'reported':{'a':{'b':{'c':{'d':{'e':[[1]]}}}}}}}", .code = 400,
	  .error = "{'code':400,'message':'JSON contains too many levels of nesting; maximum is 6'}" },
	{ .name = "a thousand levels: 400",
	  .payload = "{'state':{'desired':{'a':%s1%s}}}", .n = 1000, .open = "[", .close = "]",
	  .code = 400,
	  .error = "{'code':400,'message':'JSON contains too many levels of nesting; maximum is 6'}" },
	{ .name = "invalid UTF-8 byte",
	  .payload = "{\"state\":{\"desired\":{\"a\":\"\xff\"}}}", .raw = 1, .code = 400,
	  .error = "{'code':400,'message':'Unsupported documented encoding; supported encoding is UTF-8'}" },
	{ .name = "overlong UTF-8 encoding",
	  .payload = "{\"state\":{\"desired\":{\"a\":\"\xc0\xaf\"}}}", .raw = 1, .code = 400,
	  .error = "{'code':400,'message':'Unsupported documented encoding; supported encoding is UTF-8'}" },
	{ .name = "UTF-16 surrogate encoded as UTF-8",
	  .payload = "{\"state\":{\"desired\":{\"a\":\"\xed\xa0\x80\"}}}", .raw = 1, .code = 400,
	  .error = "{'code':400,'message':'Unsupported documented encoding; supported encoding is UTF-8'}" },
	{ .name = "payload over max_request_bytes",
	  .payload = "{'state':{'desired':{'a':'%s%s'}}}", .n = 65536, .open = "x", .close = "",
	  .code = 400,
	  .error = "{'code':400,'message':'Payload exceeds the maximum request size of 65536 bytes'}" },

	/* --- 413: the merged document */
	{ .name = "state of exactly max_doc_bytes is accepted",
	  /* {"desired":{"a":""}} is 20 bytes */
	  .payload = "{'state':{'desired':{'a':'%s%s'}}}", .n = 8172, .open = "x", .close = "" },
	{ .name = "state one byte over max_doc_bytes: 413",
	  .prior = { "{'state':{'reported':{'r':1}}}" },
	  .payload = "{'state':{'desired':{'a':'%s%s'}},'clientToken':'big'}", .n = 8160, .open = "x", .close = "",
	  .code = 413,
	  .error = "{'code':413,'message':'The payload exceeds the maximum size allowed','clientToken':'big'}" },
	{ .name = "small request over the limit once merged: 413",
	  .prior = { "{'state':{'desired':{'a':'%s%s'}}}", "{'state':{'reported':{'b':'%s%s'}}}" },
	  .payload = "{'state':{'desired':{'c':'%s%s'}}}", .n = 2730, .open = "x", .close = "",
	  .code = 413, .error = "{'code':413,'message':'The payload exceeds the maximum size allowed'}" },
	{ .name = "deleting brings a full document back under the limit",
	  .prior = { "{'state':{'desired':{'a':'%s%s'}}}", "{'state':{'reported':{'b':'%s%s'}}}" },
	  .payload = "{'state':{'desired':{'a':null,'c':'%s%s'}}}", .n = 4000, .open = "x", .close = "",
	  .version = 3 },

	/* --- delta */
	{ .name = "equal desired and reported: no delta",
	  .prior = { "{'state':{'reported':{'color':'red','n':{'x':[1,2]}}}}" },
	  .payload = "{'state':{'desired':{'color':'red','n':{'x':[1,2]}}}}",
	  .delta = NONE, .dstate = NONE },
	{ .name = "desired missing from reported is in the delta",
	  .prior = { "{'state':{'reported':{'a':1}}}" },
	  .payload = "{'state':{'desired':{'a':1,'b':{'c':2}}}}",
	  .delta = "{'b':{'c':2}}", .dstate = "{'b':{'c':2}}" },
	{ .name = "only differing leaves are in the delta",
	  .prior = { "{'state':{'reported':{'a':1,'b':2}}}" },
	  .payload = "{'state':{'desired':{'a':1,'b':3}}}", .delta = "{'b':3}" },
	{ .name = "fields only in reported are left out",
	  .prior = { "{'state':{'reported':{'a':1,'z':9,'n':{'q':1}}}}" },
	  .payload = "{'state':{'desired':{'a':2}}}", .delta = "{'a':2}" },
	{ .name = "nested delta keeps the path to the root",
	  .prior = { "{'state':{'reported':{'lights':{'color':{'r':255,'g':0,'b':255},'on':true}}}}" },
	  .payload = "{'state':{'desired':{'lights':{'color':{'r':255,'g':255,'b':255},'on':true}}}}",
	  .delta = "{'lights':{'color':{'g':255}}}" },
	{ .name = "a differing array is in the delta whole",
	  .prior = { "{'state':{'reported':{'c':[1,2,3],'d':[1]}}}" },
	  .payload = "{'state':{'desired':{'c':[1,2,4],'d':[1]}}}", .delta = "{'c':[1,2,4]}" },
	{ .name = "1 and '1' differ",
	  .prior = { "{'state':{'reported':{'v':'1','w':true}}}" },
	  .payload = "{'state':{'desired':{'v':1,'w':1}}}", .delta = "{'v':1,'w':1}" },
	{ .name = "1 and 1.0 are the same JSON number, also inside arrays",
	  .prior = { "{'state':{'reported':{'v':1.0,'u':1.5,'a':[2.0,{'b':3}],'w':2}}}" },
	  .payload = "{'state':{'desired':{'v':1,'u':1.5,'a':[2,{'b':3.0}],'w':2.5}}}", .delta = "{'w':2.5}" },
	{ .name = "numbers are not strings or booleans, arrays differ by length",
	  .prior = { "{'state':{'reported':{'t':true,'z':0,'s':'2','a':[1,2]}}}" },
	  .payload = "{'state':{'desired':{'t':1,'z':false,'s':2,'a':[1]}}}", .delta = "{'t':1,'z':false,'s':2,'a':[1]}" },
	{ .name = "object desired against scalar reported",
	  .prior = { "{'state':{'reported':{'a':5}}}" },
	  .payload = "{'state':{'desired':{'a':{'x':1}}}}", .delta = "{'a':{'x':1}}" },
	{ .name = "delta message: whole delta, desired metadata, version, token",
	  .prior = { "{'state':{'desired':{'a':1,'b':2}}}", "{'state':{'reported':{'a':1}}}" },
	  .payload = "{'state':{'desired':{'c':3}},'clientToken':'tk'}",
	  .delta = "{'b':2,'c':3}", .version = 3,
	  .documents = "{'previous':{'state':{'desired':{'a':1,'b':2},'reported':{'a':1}},"
	      "'metadata':{'desired':{'a':{'timestamp':100},'b':{'timestamp':100}},'reported':{'a':{'timestamp':101}}},'version':2},"
	      "'current':{'state':{'desired':{'a':1,'b':2,'c':3},'reported':{'a':1}},"
	      "'metadata':{'desired':{'a':{'timestamp':100},'b':{'timestamp':100},'c':{'timestamp':200}},'reported':{'a':{'timestamp':101}}},'version':3},"
	      "'timestamp':200,'clientToken':'tk'}" },
	{ .name = "a report matching desired clears the delta",
	  .prior = { "{'state':{'desired':{'a':1,'b':{'c':2}}}}" },
	  .payload = "{'state':{'reported':{'a':1,'b':{'c':2,'d':3}}}}",
	  .delta = NONE, .dstate = NONE },
	{ .name = "deleting a reported field brings it back into the delta",
	  .prior = { "{'state':{'desired':{'a':1}}}", "{'state':{'reported':{'a':1}}}" },
	  .payload = "{'state':{'reported':{'a':null}}}", .delta = NONE, .dstate = "{'a':1}" },

	/* --- the pattern's plain-text acknowledgement */
	{ .name = "ack SUCCESS becomes reported job",
	  .payload = "jobID:42 SUCCESS",
	  .state = "{'reported':{'job':{'id':'42','status':'SUCCESS'}}}",
	  .accepted = "{'state':{'reported':{'job':{'id':'42','status':'SUCCESS'}}},"
	      "'metadata':{'reported':{'job':{'id':{'timestamp':200},'status':{'timestamp':200}}}},'version':1,'timestamp':200}" },
	{ .name = "ack FAILURE with punctuation in the id",
	  .payload = "jobID:fw-1.2_3:x FAILURE",
	  .state = "{'reported':{'job':{'id':'fw-1.2_3:x','status':'FAILURE'}}}" },
	{ .name = "ack merges into an existing job object",
	  .prior = { "{'state':{'desired':{'job':{'id':'7','url':'u'}},'reported':{'job':{'id':'7','status':'IN_PROGRESS','progress':50}}}}" },
	  .payload = "jobID:7 SUCCESS",
	  .state = "{'desired':{'job':{'id':'7','url':'u'}},'reported':{'job':{'id':'7','status':'SUCCESS','progress':50}}}",
	  .metadata = "{'desired':{'job':{'id':{'timestamp':100},'url':{'timestamp':100}}},"
	      "'reported':{'job':{'id':{'timestamp':200},'status':{'timestamp':200},'progress':{'timestamp':100}}}}",
	  .delta = NONE, .dstate = "{'job':{'url':'u'}}" },
	{ .name = "ack id of 64 bytes",
	  .payload = "jobID:" ID64 " SUCCESS",
	  .state = "{'reported':{'job':{'id':'" ID64 "','status':'SUCCESS'}}}" },
	{ .name = "ack id of 65 bytes: 400",
	  .payload = "jobID:" ID64 "i SUCCESS", .code = 400,
	  .error = "{'code':400,'message':'Invalid acknowledgement: expected jobID:<id> SUCCESS or jobID:<id> FAILURE'}" },
	{ .name = "ack with an empty id: 400",
	  .payload = "jobID: SUCCESS", .code = 400,
	  .error = "{'code':400,'message':'Invalid acknowledgement: expected jobID:<id> SUCCESS or jobID:<id> FAILURE'}" },
	{ .name = "ack with another status: 400",
	  .payload = "jobID:42 DONE", .code = 400,
	  .error = "{'code':400,'message':'Invalid acknowledgement: expected jobID:<id> SUCCESS or jobID:<id> FAILURE'}" },
	{ .name = "ack with two spaces: 400",
	  .payload = "jobID:42  SUCCESS", .code = 400,
	  .error = "{'code':400,'message':'Invalid acknowledgement: expected jobID:<id> SUCCESS or jobID:<id> FAILURE'}" },
	{ .name = "ack with a trailing newline: 400",
	  .payload = "jobID:42 SUCCESS\n", .code = 400,
	  .error = "{'code':400,'message':'Invalid acknowledgement: expected jobID:<id> SUCCESS or jobID:<id> FAILURE'}" },
	{ .name = "ack cut short: 400",
	  .payload = "jobID:42", .code = 400,
	  .error = "{'code':400,'message':'Invalid acknowledgement: expected jobID:<id> SUCCESS or jobID:<id> FAILURE'}" },
	{ .name = "ack with a control byte in the id: 400",
	  .payload = "jobID:4\x01" "2 SUCCESS", .code = 400,
	  .error = "{'code':400,'message':'Invalid acknowledgement: expected jobID:<id> SUCCESS or jobID:<id> FAILURE'}" },
	{ .name = "ack in lower case is just not JSON: 400",
	  .payload = "jobid:42 SUCCESS", .code = 400, .error = "{'code':400,'message':'Invalid JSON'}" },
	{ .name = "other plain text: 400",
	  .prior = { "{'state':{'reported':{'a':1}}}" },
	  .payload = "SUCCESS", .code = 400, .error = "{'code':400,'message':'Invalid JSON'}" },

	/* --- update/documents */
	{ .name = "documents: previous is null on the first update",
	  .payload = "{'state':{'reported':{'a':1}},'clientToken':'c0'}",
	  .documents = "{'previous':null,'current':{'state':{'reported':{'a':1}},'metadata':{'reported':{'a':{'timestamp':200}}},'version':1},"
	      "'timestamp':200,'clientToken':'c0'}" },
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* ' -> " (a fresh string), with %s%s expanded as the row asks. */
static char *
q(const struct ucase *c, const char *s)
{
	char *open = NULL, *close = NULL, *out;
	size_t i, lo, lc, len;

	if (c->n > 0) {
		lo = strlen(c->open);
		lc = strlen(c->close);
		open = malloc(lo * c->n + 1);
		close = malloc(lc * c->n + 1);
		assert_non_null(open);
		assert_non_null(close);
		for (i = 0; i < (size_t)c->n; i++) {
			memcpy(open + i * lo, c->open, lo);
			memcpy(close + i * lc, c->close, lc);
		}
		open[lo * c->n] = '\0';
		close[lc * c->n] = '\0';
	}
	len = strlen(s) + (open ? strlen(open) + strlen(close) : 0) + 1;
	out = malloc(len);
	assert_non_null(out);
	if (open && strstr(s, "%s%s")) {
		const char *p = strstr(s, "%s%s");

		snprintf(out, len, "%.*s%s%s%s", (int)(p - s), s, open, close, p + 4);
	} else if (open && strstr(s, "%s")) {
		const char *p = strstr(s, "%s"), *p2 = strstr(p + 2, "%s");

		assert_non_null(p2);
		snprintf(out, len, "%.*s%s%.*s%s%s", (int)(p - s), s, open,
		    (int)(p2 - p - 2), p + 2, close, p2 + 2);
	} else {
		snprintf(out, len, "%s", s);
	}
	for (i = 0; out[i]; i++)
		if (out[i] == '\'')
			out[i] = '"';
	free(open);
	free(close);
	return out;
}

static json_t *
jq(const char *s)
{
	json_error_t e;
	size_t n = strlen(s) + 1, i;
	char *t = malloc(n);
	json_t *v;

	assert_non_null(t);
	memcpy(t, s, n);
	for (i = 0; t[i]; i++)
		if (t[i] == '\'')
			t[i] = '"';
	v = json_loads(t, JSON_DECODE_ANY, &e);
	if (!v)
		fail_msg("bad expected JSON in the table: %s (%s)", s, e.text);
	free(t);
	return v;
}

/* Fail with both texts unless got equals the expected JSON. */
static void
expect_json(const char *what, const json_t *got, const char *want)
{
	json_t *w = jq(want);

	if (!json_equal((json_t *)got, w)) {
		char *g = got ? dg_json_dumps(got) : NULL;

		print_error("%s: got %s\n  want %s\n", what, g ? g : "(null)", want);
		free(g);
		json_decref(w);
		fail();
	}
	json_decref(w);
}

/* Invariants after every accepted update: the persisted form loads back to
 * the same document, and update/documents "current" is that document. */
static void
check_roundtrip(const dg_shadow *sh)
{
	char *text = dg_shadow_to_json(sh);
	json_t *a = dg_shadow_document(sh), *b;
	dg_shadow *back;
	dg_err err;

	assert_non_null(text);
	back = dg_shadow_from_json(text, strlen(text), &err);
	if (!back)
		fail_msg("persisted form does not load (%s): %s", dg_strerror(err), text);
	b = dg_shadow_document(back);
	assert_true(json_equal(a, b));
	assert_int_equal(dg_shadow_exists(back), dg_shadow_exists(sh));
	json_decref(a);
	json_decref(b);
	dg_shadow_free(back);
	free(text);
}

static void
run_case(void **state)
{
	const struct ucase *c = *state;
	dg_shadow *sh = dg_shadow_new();
	dg_shadow_result res;
	dg_shadow_limits lim;
	char *payload, *before, *after;
	size_t plen;
	int i;

	assert_non_null(sh);
	dg_shadow_limits_default(&lim);
	for (i = 0; i < 4 && c->prior[i]; i++) {
		char *p = q(c, c->prior[i]);

		assert_int_equal(dg_shadow_update(sh, p, strlen(p), 100 + i, &lim, &res), DG_OK);
		if (res.code != 0)
			fail_msg("prior update %d rejected: %d", i, res.code);
		dg_shadow_result_clear(&res);
		free(p);
	}
	if (c->raw) {
		plen = c->rawlen ? c->rawlen : strlen(c->payload);
		payload = malloc(plen + 1);
		assert_non_null(payload);
		memcpy(payload, c->payload, plen + 1);
	} else {
		payload = q(c, c->payload);
		plen = strlen(payload);
	}
	before = dg_shadow_to_json(sh);
	assert_non_null(before);
	assert_int_equal(dg_shadow_update(sh, payload, plen, T_REQ, &lim, &res), DG_OK);
	assert_int_equal(res.code, c->code);
	after = dg_shadow_to_json(sh);
	if (c->code != 0) {
		assert_non_null(res.error);
		assert_null(res.accepted);
		assert_null(res.delta);
		assert_null(res.documents);
		assert_int_equal(json_integer_value(json_object_get(res.error, "code")), c->code);
		if (c->error)
			expect_json("error", res.error, c->error);
		/* a rejection changes nothing */
		assert_string_equal(before, after);
	} else {
		json_t *doc = dg_shadow_document(sh), *ds;
		int64_t ver = dg_shadow_version(sh);

		assert_null(res.error);
		assert_non_null(res.accepted);
		assert_non_null(res.documents);
		assert_true(dg_shadow_exists(sh));
		if (c->version)
			assert_int_equal(ver, c->version);
		if (c->state)
			expect_json("state", json_object_get(doc, "state"), c->state);
		if (c->metadata)
			expect_json("metadata", json_object_get(doc, "metadata"), c->metadata);
		assert_int_equal(json_integer_value(json_object_get(doc, "timestamp")), T_REQ);
		assert_int_equal(json_integer_value(json_object_get(res.accepted, "version")), ver);
		if (c->accepted)
			expect_json("accepted", res.accepted, c->accepted);
		if (c->documents)
			expect_json("documents", res.documents, c->documents);
		json_object_del(doc, "timestamp");
		assert_true(json_equal(json_object_get(res.documents, "current"), doc));
		if (c->delta && strcmp(c->delta, NONE) == 0) {
			assert_null(res.delta);
		} else if (c->delta) {
			assert_non_null(res.delta);
			expect_json("delta", json_object_get(res.delta, "state"), c->delta);
			assert_int_equal(json_integer_value(json_object_get(res.delta, "version")), ver);
			assert_int_equal(json_integer_value(json_object_get(res.delta, "timestamp")), T_REQ);
		}
		ds = dg_shadow_delta_state(sh);
		if (res.delta)
			assert_true(json_equal(ds, json_object_get(res.delta, "state")));
		if (c->dstate && strcmp(c->dstate, NONE) == 0)
			assert_null(ds);
		else if (c->dstate)
			expect_json("delta state", ds, c->dstate);
		json_decref(ds);
		json_decref(doc);
		check_roundtrip(sh);
	}
	dg_shadow_result_clear(&res);
	free(before);
	free(after);
	free(payload);
	dg_shadow_free(sh);
}

/* --- beyond the update table */

static dg_shadow *
shadow_with(const char *const *updates)
{
	dg_shadow *sh = dg_shadow_new();
	dg_shadow_result res;
	int i;

	assert_non_null(sh);
	for (i = 0; updates[i]; i++) {
		json_t *v = jq(updates[i]);
		char *p = dg_json_dumps(v);

		assert_int_equal(dg_shadow_update(sh, p, strlen(p), 100 + i, NULL, &res), DG_OK);
		assert_int_equal(res.code, 0);
		dg_shadow_result_clear(&res);
		json_decref(v);
		free(p);
	}
	return sh;
}

#define UPD_B "{\"state\":{\"reported\":{\"b\":1}},\"version\":2}"

static void
test_persist_roundtrip(void **state)
{
	static const char *const ups[] = {
		"{'state':{'desired':{'a':1,'l':{'c':[1,{'x':'y'}]}}}}",
		"{'state':{'reported':{'a':2,'s':'\xc3\xa9'}}}",
		NULL,
	};
	dg_shadow *sh = shadow_with(ups), *back;
	dg_shadow_result res;
	json_t *d1, *d2, *m;
	char *text;
	dg_err err;

	text = dg_shadow_to_json(sh);
	back = dg_shadow_from_json(text, strlen(text), &err);
	assert_non_null(back);
	assert_int_equal(dg_shadow_version(back), 2);
	assert_true(dg_shadow_exists(back));
	d1 = dg_shadow_document(sh);
	d2 = dg_shadow_document(back);
	assert_true(json_equal(d1, d2));
	expect_json("loaded", d2, "{'state':{'desired':{'a':1,'l':{'c':[1,{'x':'y'}]}},'reported':{'a':2,'s':'\xc3\xa9'}},"
	    "'metadata':{'desired':{'a':{'timestamp':100},'l':{'c':[{'timestamp':100},{'x':{'timestamp':100}}]}},"
	    "'reported':{'a':{'timestamp':101},'s':{'timestamp':101}}},'version':2,'timestamp':101}");
	json_decref(d1);
	json_decref(d2);
	free(text);

	/* delete: version kept, tombstone persisted, next update is version+1 */
	assert_int_equal(dg_shadow_delete(back, 300, "del", &m), DG_OK);
	expect_json("delete/accepted", m, "{'version':2,'timestamp':300,'clientToken':'del'}");
	json_decref(m);
	assert_false(dg_shadow_exists(back));
	assert_null(dg_shadow_delta_state(back));
	assert_int_equal(dg_shadow_delete(back, 301, NULL, &m), DG_ERR_SHADOW_NOT_FOUND);
	assert_null(m);
	text = dg_shadow_to_json(back);
	assert_string_equal(text, "{\"version\":2,\"timestamp\":300}");
	dg_shadow_free(back);
	back = dg_shadow_from_json(text, strlen(text), &err);
	free(text);
	assert_non_null(back);
	assert_false(dg_shadow_exists(back));
	assert_int_equal(dg_shadow_version(back), 2);
	assert_int_equal(dg_shadow_update(back, UPD_B, strlen(UPD_B), 400, NULL, &res), DG_OK);
	assert_int_equal(res.code, 0);
	expect_json("documents after delete", res.documents,
	    "{'previous':null,'current':{'state':{'reported':{'b':1}},'metadata':{'reported':{'b':{'timestamp':400}}},'version':3},'timestamp':400}");
	dg_shadow_result_clear(&res);
	assert_true(dg_shadow_exists(back));
	assert_int_equal(dg_shadow_version(back), 3);
	dg_shadow_free(sh);
	dg_shadow_free(back);
}

/* set_document: what a document is. ok = 1 when it must be accepted. */
static const struct dcase {
	const char *doc;
	int ok;
	int exists_after;
} dcases[] = {
	{ "{'state':{'desired':{'a':1}},'metadata':{'desired':{'a':{'timestamp':5}}},'version':3,'timestamp':9}", 1, 1 },
	/* get/accepted output: delta and clientToken ignored */
	{ "{'state':{'desired':{'a':1},'delta':{'a':1}},'metadata':{'desired':{'a':{'timestamp':5}}},'version':3,'timestamp':9,'clientToken':'x'}", 1, 1 },
	/* update/documents current: no timestamp */
	{ "{'state':{'reported':{'c':[1,{'x':2}]}},'metadata':{'reported':{'c':[{'timestamp':1},{'x':{'timestamp':1}}]}},'version':1}", 1, 1 },
	{ "{'state':{},'metadata':{},'version':4}", 1, 1 },
	{ "[1]", 0, 0 },
	{ "{'state':{},'metadata':{}}", 0, 0 },                                  /* no version */
	{ "{'state':{},'metadata':{},'version':'3'}", 0, 0 },
	{ "{'state':{},'metadata':{},'version':0}", 0, 0 },                      /* a document has version >= 1 */
	{ "{'state':{},'metadata':{},'version':-2}", 0, 0 },
	{ "{'state':{},'metadata':{},'version':9007199254740992}", 0, 0 },      /* over 2^53-1 */
	{ "{'state':{},'metadata':{},'version':1,'timestamp':'now'}", 0, 0 },
	{ "{'version':3,'timestamp':1}", 0, 0 },                                 /* tombstone: only from_json */
	{ "{'state':[],'metadata':{},'version':1}", 0, 0 },
	{ "{'state':{'desired':5},'metadata':{'desired':{'timestamp':1}},'version':1}", 0, 0 },
	{ "{'state':{'other':{}},'metadata':{'other':{}},'version':1}", 0, 0 },
	{ "{'state':{'desired':{'a':1}},'metadata':{},'version':1}", 0, 0 },     /* missing metadata section */
	{ "{'state':{'desired':{'a':1}},'metadata':{'desired':{}},'version':1}", 0, 0 }, /* missing leaf */
	{ "{'state':{'desired':{'a':1}},'metadata':{'desired':{'a':{'timestamp':1},'b':{'timestamp':1}}},'version':1}", 0, 0 },
	{ "{'state':{'desired':{'a':1}},'metadata':{'desired':{'a':{'timestamp':'1'}}},'version':1}", 0, 0 },
	{ "{'state':{'desired':{'a':1}},'metadata':{'desired':{'a':{'timestamp':1,'x':1}}},'version':1}", 0, 0 },
	{ "{'state':{'desired':{'a':[1,2]}},'metadata':{'desired':{'a':[{'timestamp':1}]}},'version':1}", 0, 0 },
	{ "{'state':{'desired':{'a':[1]}},'metadata':{'desired':{'a':{'timestamp':1}}},'version':1}", 0, 0 },
	{ "{'state':{'desired':{'a':null}},'metadata':{'desired':{'a':{'timestamp':1}}},'version':1}", 0, 0 },
	{ "{'state':{},'metadata':{},'version':1,'extra':1}", 0, 0 },
};

static void
test_set_document(void **state)
{
	static const char *const ups[] = { "{'state':{'desired':{'keep':1}}}", NULL };
	size_t i;

	for (i = 0; i < sizeof(dcases) / sizeof(dcases[0]); i++) {
		dg_shadow *sh = shadow_with(ups);
		char *before = dg_shadow_to_json(sh), *after;
		json_t *doc = jq(dcases[i].doc), *copy = json_deep_copy(doc);
		dg_err err = dg_shadow_set_document(sh, doc);

		after = dg_shadow_to_json(sh);
		/* the input is not modified */
		assert_true(json_equal(doc, copy));
		if (dcases[i].ok) {
			json_t *got = dg_shadow_document(sh);

			if (err != DG_OK)
				fail_msg("document %zu refused: %s", i, dcases[i].doc);
			assert_int_equal(dg_shadow_exists(sh), dcases[i].exists_after);
			assert_int_equal(dg_shadow_version(sh), json_integer_value(json_object_get(doc, "version")));
			json_object_del(json_object_get(doc, "state"), "delta");
			assert_true(json_equal(json_object_get(got, "state"), json_object_get(doc, "state")));
			assert_true(json_equal(json_object_get(got, "metadata"), json_object_get(doc, "metadata")));
			json_decref(got);
		} else {
			if (err != DG_ERR_JSON_TYPE)
				fail_msg("document %zu accepted: %s", i, dcases[i].doc);
			assert_string_equal(before, after);
		}
		json_decref(doc);
		json_decref(copy);
		free(before);
		free(after);
		dg_shadow_free(sh);
	}
}

static void
test_set_document_then_update(void **state)
{
	dg_shadow *sh = dg_shadow_new();
	json_t *doc = jq("{'state':{'desired':{'a':1,'b':2},'reported':{'a':1}},"
	    "'metadata':{'desired':{'a':{'timestamp':5},'b':{'timestamp':5}},'reported':{'a':{'timestamp':6}}},'version':7}");
	dg_shadow_result res;
	const char *up = "{\"state\":{\"reported\":{\"b\":2}},\"version\":7}";

	assert_int_equal(dg_shadow_set_document(sh, doc), DG_OK);
	json_decref(doc);
	assert_true(dg_shadow_exists(sh));
	assert_int_equal(dg_shadow_update(sh, up, strlen(up), 50, NULL, &res), DG_OK);
	assert_int_equal(res.code, 0);
	assert_int_equal(dg_shadow_version(sh), 8);
	assert_null(dg_shadow_delta_state(sh));
	dg_shadow_result_clear(&res);
	dg_shadow_free(sh);
}

static void
test_from_json_errors(void **state)
{
	static const struct {
		const char *text;
		dg_err err;
	} bad[] = {
		{ "", DG_ERR_JSON },
		{ "{", DG_ERR_JSON },
		{ "{\"version\":1,\"version\":2}", DG_ERR_JSON },
		{ "\"x\"", DG_ERR_JSON_TYPE },
		{ "{\"state\":{},\"version\":1}", DG_ERR_JSON_TYPE },
		{ "{\"metadata\":{},\"version\":1}", DG_ERR_JSON_TYPE },
		{ "{\"timestamp\":1}", DG_ERR_JSON_TYPE },
	};
	size_t i;
	dg_err err;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = DG_OK;
		assert_null(dg_shadow_from_json(bad[i].text, strlen(bad[i].text), &err));
		assert_int_equal(err, bad[i].err);
	}
}

static void
test_new_shadow(void **state)
{
	dg_shadow *sh = dg_shadow_new();
	json_t *doc;
	char *text;

	assert_false(dg_shadow_exists(sh));
	assert_int_equal(dg_shadow_version(sh), 0);
	assert_null(dg_shadow_delta_state(sh));
	doc = dg_shadow_document(sh);
	expect_json("empty", doc, "{'state':{},'metadata':{},'version':0,'timestamp':0}");
	json_decref(doc);
	text = dg_shadow_to_json(sh);
	assert_string_equal(text, "{\"version\":0,\"timestamp\":0}");
	free(text);
	assert_int_equal(dg_shadow_delete(sh, 1, NULL, NULL), DG_ERR_SHADOW_NOT_FOUND);
	dg_shadow_free(sh);
	dg_shadow_free(NULL);
}

static void
test_get_accepted(void **state)
{
	static const char *const ups[] = {
		"{'state':{'desired':{'a':1,'n':{'x':1,'y':2}}}}",
		"{'state':{'reported':{'a':1,'n':{'x':1,'y':3},'r':true}}}",
		NULL,
	};
	dg_shadow *sh = shadow_with(ups);
	json_t *m = dg_shadow_get_accepted(sh, "g1", 500);

	expect_json("get/accepted", m,
	    "{'state':{'desired':{'a':1,'n':{'x':1,'y':2}},'reported':{'a':1,'n':{'x':1,'y':3},'r':true},'delta':{'n':{'y':2}}},"
	    "'metadata':{'desired':{'a':{'timestamp':100},'n':{'x':{'timestamp':100},'y':{'timestamp':100}}},"
	    "'reported':{'a':{'timestamp':101},'n':{'x':{'timestamp':101},'y':{'timestamp':101}},'r':{'timestamp':101}}},"
	    "'version':2,'timestamp':500,'clientToken':'g1'}");
	json_decref(m);
	/* no delta member when the delta is empty, no token when none given */
	dg_shadow_free(sh);
	{
		static const char *const ups2[] = { "{'state':{'reported':{'a':1}}}", NULL };

		sh = shadow_with(ups2);
	}
	m = dg_shadow_get_accepted(sh, NULL, 7);
	expect_json("get/accepted 2", m,
	    "{'state':{'reported':{'a':1}},'metadata':{'reported':{'a':{'timestamp':100}}},'version':1,'timestamp':7}");
	json_decref(m);
	dg_shadow_free(sh);
}

static void
test_client_token(void **state)
{
	static const struct {
		const char *payload;
		const char *token;
	} tc[] = {
		{ "{\"clientToken\":\"abc\"}", "abc" },
		{ "{\"clientToken\":\"" TOK64 "\",\"state\":5}", TOK64 },
		{ "{\"clientToken\":\"" TOK64 "x\"}", NULL },
		{ "{\"clientToken\":5}", NULL },
		{ "{\"other\":\"abc\"}", NULL },
		{ "", NULL },
		{ "not json", NULL },
		{ "[\"clientToken\"]", NULL },
		{ "{\"clientToken\":\"\xff\"}", NULL },
	};
	size_t i;

	for (i = 0; i < sizeof(tc) / sizeof(tc[0]); i++) {
		char *t = dg_shadow_client_token(tc[i].payload, strlen(tc[i].payload), NULL);

		if (tc[i].token) {
			assert_non_null(t);
			assert_string_equal(t, tc[i].token);
		} else {
			assert_null(t);
		}
		free(t);
	}
	assert_null(dg_shadow_client_token(NULL, 0, NULL));
}

static void
test_error_message(void **state)
{
	json_t *e = dg_shadow_error(404, "No shadow exists with name: d1", "t");

	expect_json("error", e, "{'code':404,'message':'No shadow exists with name: d1','clientToken':'t'}");
	json_decref(e);
	e = dg_shadow_error(400, "Invalid JSON", NULL);
	expect_json("error", e, "{'code':400,'message':'Invalid JSON'}");
	json_decref(e);
}

/* Configured limits are honoured, not the defaults. */
static void
test_custom_limits(void **state)
{
	dg_shadow_limits lim;
	dg_shadow *sh = dg_shadow_new();
	dg_shadow_result res;
	const char *d3 = "{\"state\":{\"desired\":{\"a\":{\"b\":{\"c\":1}}}}}";
	const char *d2 = "{\"state\":{\"desired\":{\"a\":{\"b\":1}}},\"clientToken\":\"abcd\"}";
	const char *big = "{\"state\":{\"desired\":{\"a\":\"0123456789\"}}}";

	dg_shadow_limits_default(&lim);
	assert_int_equal(lim.max_doc_bytes, 8192);
	assert_int_equal(lim.max_request_bytes, 65536);
	assert_int_equal(lim.max_depth, 6);
	assert_int_equal(lim.max_token_bytes, 64);
	lim.max_depth = 2;
	lim.max_token_bytes = 3;
	lim.max_doc_bytes = 29; /* {"desired":{"a":"0123456789"}} is 30 */
	lim.max_request_bytes = 60;
	assert_int_equal(dg_shadow_update(sh, d3, strlen(d3), 1, &lim, &res), DG_OK);
	expect_json("depth", res.error, "{'code':400,'message':'JSON contains too many levels of nesting; maximum is 2'}");
	dg_shadow_result_clear(&res);
	assert_int_equal(dg_shadow_update(sh, d2, strlen(d2), 1, &lim, &res), DG_OK);
	expect_json("token", res.error, "{'code':400,'message':'Invalid clientToken'}");
	dg_shadow_result_clear(&res);
	assert_int_equal(dg_shadow_update(sh, big, strlen(big), 1, &lim, &res), DG_OK);
	assert_int_equal(res.code, 413);
	dg_shadow_result_clear(&res);
	lim.max_doc_bytes = 30;
	assert_int_equal(dg_shadow_update(sh, big, strlen(big), 1, &lim, &res), DG_OK);
	assert_int_equal(res.code, 0);
	dg_shadow_result_clear(&res);
	lim.max_request_bytes = strlen(big) - 1;
	assert_int_equal(dg_shadow_update(sh, big, strlen(big), 1, &lim, &res), DG_OK);
	assert_int_equal(res.code, 400);
	dg_shadow_result_clear(&res);
	assert_int_equal(dg_shadow_version(sh), 1);
	dg_shadow_free(sh);
}

/* The same request again (clientToken of a recent update): accepted, not
 * applied twice, across a save and load; other tokens apply as usual. */
static void
upd_code(dg_shadow *sh, const char *req, int64_t now, int *replayed)
{
	dg_shadow_result res = { 0 };

	assert_int_equal(dg_shadow_update(sh, req, strlen(req), now, NULL, &res), DG_OK);
	assert_int_equal(res.code, 0);
	*replayed = res.replayed;
	if (res.replayed) {
		assert_null(res.delta);
		assert_null(res.documents);
		assert_non_null(res.accepted);
		assert_int_equal(json_integer_value(json_object_get(res.accepted, "version")), dg_shadow_version(sh));
	}
	dg_shadow_result_clear(&res);
}

static void
test_replay(void **state)
{
	const char *a = "{\"state\":{\"reported\":{\"status\":\"SUCCEEDED\"}},\"clientToken\":\"dg-1-7\"}";
	const char *b = "{\"state\":{\"reported\":{\"n\":2}},\"clientToken\":\"dg-1-8\"}";
	const char *notok = "{\"state\":{\"reported\":{\"n\":2}}}";
	dg_shadow *sh = dg_shadow_new(), *back;
	char *text, buf[128];
	dg_err err;
	int rp, i;

	assert_non_null(sh);
	upd_code(sh, a, 10, &rp);
	assert_false(rp);
	assert_int_equal(dg_shadow_version(sh), 1);
	upd_code(sh, a, 11, &rp);
	assert_true(rp);
	assert_int_equal(dg_shadow_version(sh), 1);
	upd_code(sh, b, 12, &rp);
	assert_false(rp);
	upd_code(sh, a, 13, &rp); /* still recent */
	assert_true(rp);
	upd_code(sh, notok, 14, &rp); /* no token: always applied */
	upd_code(sh, notok, 15, &rp);
	assert_false(rp);
	assert_int_equal(dg_shadow_version(sh), 4);
	/* persisted with the document */
	text = dg_shadow_to_json(sh);
	assert_non_null(text);
	back = dg_shadow_from_json(text, strlen(text), &err);
	assert_non_null(back);
	upd_code(back, b, 16, &rp);
	assert_true(rp);
	assert_int_equal(dg_shadow_version(back), 4);
	/* the ring forgets the oldest after DG_SHADOW_TOKENS newer ones */
	for (i = 0; i < DG_SHADOW_TOKENS; i++) {
		snprintf(buf, sizeof(buf), "{\"state\":{\"reported\":{\"i\":%d}},\"clientToken\":\"t%d\"}", i, i);
		upd_code(back, buf, 17, &rp);
		assert_false(rp);
	}
	upd_code(back, a, 18, &rp);
	assert_false(rp);
	/* a stored document with a malformed ring is refused */
	{
		const char *badring = "{\"state\":{},\"metadata\":{},\"version\":1,\"clientTokens\":[1]}";

		assert_null(dg_shadow_from_json(badring, strlen(badring), &err));
	}
	free(text);
	dg_shadow_free(back);
	dg_shadow_free(sh);
}

int
main(void)
{
	static const struct CMUnitTest extra[] = {
		cmocka_unit_test(test_persist_roundtrip),
		cmocka_unit_test(test_set_document),
		cmocka_unit_test(test_set_document_then_update),
		cmocka_unit_test(test_from_json_errors),
		cmocka_unit_test(test_new_shadow),
		cmocka_unit_test(test_get_accepted),
		cmocka_unit_test(test_client_token),
		cmocka_unit_test(test_error_message),
		cmocka_unit_test(test_custom_limits),
		cmocka_unit_test(test_replay),
	};
	struct CMUnitTest tests[NCASES + sizeof(extra) / sizeof(extra[0])];
	size_t i, n = 0;

	memset(tests, 0, sizeof(tests));
	for (i = 0; i < NCASES; i++) {
		tests[n].name = cases[i].name;
		tests[n].test_func = run_case;
		tests[n].initial_state = (void *)&cases[i];
		n++;
	}
	for (i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
		tests[n++] = extra[i];
	return _cmocka_run_group_tests("shadow", tests, n, NULL, NULL);
}
