#!/usr/bin/env python3
"""Writes N varied, valid graphsec NDJSON import lines to stdout (benchmarks, fixtures).

Usage: scripts/ndjson-profiles.py 1000000 > profiles.ndjson
"""
import json
import sys

PERMS = ["unknown", "anonymous", "guest", "user", "administrator", "system"]

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
out = sys.stdout
for i in range(n):
    v = {"@graphsec.tenant": "tenant-%d" % (i % 4), "id": "p-%07d" % i, "name": "profile %d" % i,
         "isSigned": i % 3 == 0, "permissionsRequired": PERMS[i % 6], "riskScore": str(i % 100),
         "platform": "Windows", "publisher": "pub %d" % (i % 5000), "tags": ["a", "t%d" % (i % 7)],
         "createdDateTime": "2020-01-%02dT10:00:%02d.1234567Z" % (1 + i % 28, i % 60),
         "lastModifiedDateTime": "2021-06-01T08:30:00Z",
         "vendorInformation": {"provider": "p%d" % (i % 5), "vendor": "v"}}
    if i % 2 == 0:
        v["extra"] = {"n": i}
    out.write(json.dumps(v, separators=(",", ":")) + "\n")
