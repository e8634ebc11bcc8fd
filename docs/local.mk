# docs/: protocol and format pages, man pages
dist_doc_DATA += docs/benchmarks.md docs/protocol.md docs/gateway.md
# cache (issue 3)
dist_doc_DATA += docs/cache.md
# fetch (issue 4)
dist_doc_DATA += docs/fetch.md
dist_doc_DATA += docs/swu.md docs/manifest.md
dist_man_MANS += docs/deltagate.1 docs/deltagated.8 docs/deltagate-shadowd.8
# delta engine (issue 6)
dist_doc_DATA += docs/delta-format.md
# operator tools (issue 13)
dist_doc_DATA += docs/deploy.md
# install and packaging (issue 14)
dist_doc_DATA += docs/install.md
dist_doc_DATA += docs/reliability.md
