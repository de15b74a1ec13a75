"""The runner every infra test script ends with: runs each `test_*` function
of the calling module, prints `ok`/`FAIL` per test and a summary line, and
returns the exit status (1 if any failed)."""

from __future__ import annotations

import traceback


def run_tests(namespace: dict, label: str) -> int:
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, test in tests:
        try:
            test()
        except Exception as err:  # noqa: BLE001 - report every failure
            failed += 1
            detail = str(err) if isinstance(err, AssertionError) else traceback.format_exc()
            print(f"FAIL {name}\n  " + detail.replace("\n", "\n  "))
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{label}: {passed} passed, {failed} failed")
    return 1 if failed else 0
