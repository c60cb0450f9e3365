"""transformers' own common tests (from the installed version's sdist, fetched by `make test` into
`.venv/transformers-tests/<version>`, see `fetch_transformers_tests.py`) run on tvr's models and processors."""

import sys

from fetch_transformers_tests import cache_dir

collect_ignore = ["stubs", "fetch_transformers_tests.py"]

_tests = cache_dir()
if (_tests / "transformers_tests" / "test_modeling_common.py").is_file():
    sys.path.insert(0, str(_tests))
