# examples/: the CoAP device simulator (issue 5)
