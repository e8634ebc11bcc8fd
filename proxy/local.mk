# proxy/: the gateway daemon deltagated (issue 4)
