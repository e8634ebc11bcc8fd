# cache/: the content-addressed image cache (issue 3)
