# docs/: protocol and format pages, man pages
dist_doc_DATA += docs/benchmarks.md
dist_doc_DATA += docs/swu.md docs/manifest.md
# delta engine (issue 6)
dist_doc_DATA += docs/delta-format.md
