#!/usr/bin/env python3
"""tests/sigv4_ref.py - an independent AWS SigV4 pre-signer (Python's hmac,
hashlib and urllib only), written from AWS's documentation, to cross-check
dg_sigv4 on inputs AWS publishes no worked example for.

usage: sigv4_ref.py URL REGION AMZDATE EXPIRES   (AWS_* credentials in env)
prints the pre-signed GET URL."""
import hashlib
import hmac
import os
import sys
import urllib.parse


def enc(s, safe):
    return urllib.parse.quote(s, safe=safe)


def main():
    url, region, amzdate, expires = sys.argv[1:5]
    ak = os.environ["AWS_ACCESS_KEY_ID"]
    sk = os.environ["AWS_SECRET_ACCESS_KEY"]
    tok = os.environ.get("AWS_SESSION_TOKEN", "")
    scheme, rest = url.split("://", 1)
    host, path = rest.split("/", 1)
    path = "/" + path
    date = amzdate[:8]
    scope = f"{date}/{region}/s3/aws4_request"
    params = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{ak}/{scope}",
        "X-Amz-Date": amzdate,
        "X-Amz-Expires": expires,
        "X-Amz-SignedHeaders": "host",
    }
    if tok:
        params["X-Amz-Security-Token"] = tok
    q = "&".join(f"{enc(k, '-_.~')}={enc(v, '-_.~')}" for k, v in sorted(params.items()))
    epath = enc(path, "/-_.~")
    creq = "\n".join(["GET", epath, q, f"host:{host}", "", "host", "UNSIGNED-PAYLOAD"])
    sts = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + sk).encode()
    for part in (date, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    print(f"{scheme}://{host}{epath}?{q}&X-Amz-Signature={sig}")


main()
