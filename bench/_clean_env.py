"""Imported first by every bench: the developer's own ``DISTRIBUTOR_*`` configuration must
not leak into a bench's runs (each sets what it measures). The test harness's own
``DISTRIBUTOR_TEST_*`` variables stay: which Redis databases a run may claim, for one
(``DISTRIBUTOR_TEST_REDIS_DBS``, tests/redis_db.py), when other runs hold the default ones."""

import os

for _name in list(os.environ):
    if _name.startswith("DISTRIBUTOR_") and not _name.startswith("DISTRIBUTOR_TEST_"):
        del os.environ[_name]
