"""PDF -> clean pages -> chunks. Also home of the types, settings and errors every stage shares."""
