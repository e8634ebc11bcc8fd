# docs/: protocol and format pages, man pages
dist_doc_DATA += docs/benchmarks.md docs/protocol.md
