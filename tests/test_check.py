"""`sqrtdk check`: it passes on unit entries, fails where the band is too narrow, and names what failed."""

import json


def test_check_names_only_the_bands_that_fail(cli):
    code, stdout, stderr = cli("check", "--tol", "0.05,0.001", "--dim", "64,1024", "--quiet")
    assert code == 1 and stdout == "" and len(stderr.strip().splitlines()) == 1
    line = stderr.strip()
    assert "[0.999, 1.001] at d_k = 64, 1024" in line and "[0.95, 1.05]" not in line


def test_check_passes(cli):
    code, stdout, stderr = cli("check", "--json")
    doc = json.loads(stdout)
    assert code == 0 and all(r["passed"] for r in doc["rows"])
    assert [r["d_k"] for r in doc["rows"]] == [2**i for i in range(11)]


def test_check_can_fail(cli):
    code, stdout, stderr = cli("check", "--std", "1.1", "--dim", "4,64")
    assert code == 1
    assert "FAIL" in stdout
    assert (
        stderr.strip() == "sqrtdk: check failed: the scaled variance's 99.9% interval leaves "
        "[0.95, 1.05] at d_k = 4, 64"
    )


def test_the_table_says_how_many_d_k_pass(cli):
    code, stdout, _ = cli("check", "--dim", "1,4", "--samples", "2000", "--tol", "0.9")
    assert code == 0 and "2 of 2 values of d_k pass" in stdout
