"""neural-tangents' own tests of stax and predict, run through ntkdepth's bridge.

neural-tangents' wheel installs its test files as a top-level ``tests``
package. ``stax/elementwise_test.py``, ``stax/stax_test.py`` and
``predict_test.py`` run here in a pytest subprocess with the bridge loaded
first (``tests/nt_upstream_harness.py``), so that a JAX or SciPy release
that breaks the bridge, or neural-tangents' kernels on it, fails this
project's suite. Deselected by name:

- ``PLACEHOLDER``: the cases that reach neural-tangents' empirical or Monte
  Carlo kernels, which the bridge replaces by placeholders (they raise
  ``NeuralTangentsFeatureUnavailable``; ntkdepth.empirical has its own);
- ``SLOW``: the cases that take longest on a 2-core CPU (each several times
  the rest of a file), so that the run stays short. Each class they belong to
  keeps faster cases in the run (see ``REQUIRED``).

A name in either list that no longer exists is an error, so that neither
list can silently go stale.
"""

import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

FILES = ("stax/elementwise_test.py", "stax/stax_test.py", "predict_test.py")

_E, _S, _P = FILES

PLACEHOLDER = [
    *(f"{_E}::ActivationTest::test_{name}" for name in (
        "hermite0", "hermite2", "monomial0", "monomial1", "monomial2", "monomial3",
        "nonlineariy0", "nonlineariy1", "nonlineariy2", "nonlineariy3",
        "nonparametric0", "nonparametric1", "nonparametric2", "nonparametric3",
        "polynomial0", "polynomial1", "polynomial2", "polynomial3", "rbf0", "rbf1",
    )),
    f"{_S}::StaxTest::test_sparse_inputs1",
    f"{_S}::StaxTest::test_sparse_inputs3",
    f"{_S}::ParameterizationTest::test_linear2",
    f"{_S}::ParameterizationTest::test_linear3",
    *(f"{_S}::ParallelInOutTest::test_{name}" for name in (
        "nested_parallel0", "nested_parallel1", "parallel_in0", "parallel_in1",
        "parallel_in_out0", "parallel_in_out1", "parallel_out0", "parallel_out1",
    )),
    *(f"{_P}::PredictTest::{name}" for name in (
        "testGpInference", "testMaxLearningRate2", "testNTKGDPrediction1", "testNTKGDPrediction2",
        "testNTKMeanCovPrediction0", "testPredictND",
    )),
    *(f"{_P}::PredictKwargsTest::test_kwargs{i}" for i in (1, 2, 3)),
]

SLOW = [
    *(f"{_E}::AutodiffTest::{name}" for name in (
        "test_issue_1231", "test_issue_1233", "test_autodiff0", "test_autodiff1", "test_autodiff2",
        "test_autodiff3",
    )),
    f"{_E}::ActivationTest::test_exp_normalized",
    *(f"{_E}::ElementwiseTest::test_elementwise{i}" for i in (0, 2, 3)),
    f"{_E}::ABReluTest::test_ab_relu_id0",
    f"{_E}::ABReluTest::test_ab_relu_id1",
    f"{_S}::StaxTest::test_composition_conv0",
    f"{_S}::StaxTest::test_composition_conv1",
    f"{_S}::StaxTest::test_composition_conv2",
    f"{_S}::StaxTest::test_avg_pool",
    *(f"{_P}::PredictTest::{name}" for name in (
        "testGradientDescentMseEnsembleTrain", "testGradientDescentMseEnsembleGet0",
        "testGradientDescentMseEnsembleGet1", "testNTKGDPrediction0", "testNTKGDPrediction3",
        "testNTK_NTKNNGPAgreement0", "testNTK_NTKNNGPAgreement2", "testNTK_NTKNNGPAgreement3",
        "testPredCovPosDef2", "testPredCovPosDef3", "testPredictOnCPU", "testTrainedEnsemblePredCov0",
        "testZeroTimeAgreement3", "testInfiniteTimeAgreement0", "testInfiniteTimeAgreement1",
    )),
    f"{_P}::PredictKwargsTest::test_kwargs0",
]

# Cases that must run and pass: max_learning_rate through the bridge's SciPy fix,
# and at least one case of every class that lost slow ones.
REQUIRED = [
    f"{_P}::PredictTest::testMaxLearningRate0",
    f"{_P}::PredictTest::testMaxLearningRate1",
    f"{_P}::PredictTest::testMaxLearningRate3",
    f"{_P}::PredictTest::testNTK_NTKNNGPAgreement1",
    f"{_P}::PredictTest::testPredCovPosDef0",
    f"{_P}::PredictTest::testInfiniteTimeAgreement2",
    f"{_P}::PredictTest::testZeroTimeAgreement2",
    f"{_E}::AutodiffTest::test_issue_1230",
    f"{_E}::AutodiffTest::test_issue_1232",
    f"{_E}::ActivationTest::test_exp_normalized_ntk",
    f"{_S}::StaxTest::test_composition_dense",
    f"{_S}::StaxTest::test_composition_conv3",
    f"{_E}::ElementwiseTest::test_elementwise1",
    f"{_E}::ABReluTest::test_ab_relu_id2",
]

# What passes on jax 0.10.2 / SciPy 1.17, CPU (with NT_NUM_GENERATED_CASES=4); fewer means
# cases were lost (renamed, skipped or no longer collected).
MIN_PASSED = 31


def _upstream_dir() -> Path:
    spec = importlib.util.find_spec("neural_tangents")  # located, not imported
    return Path(spec.origin).resolve().parents[1] / "tests"


@pytest.mark.slow
def test_neural_tangents_own_tests_pass_through_the_bridge(tmp_path, request):
    upstream = _upstream_dir()
    assert (upstream / "test_utils.py").is_file(), f"neural-tangents' test files are not in {upstream}"
    assert not set(PLACEHOLDER) & set(SLOW)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    deselect = {name: "placeholder" for name in PLACEHOLDER} | {name: "slow" for name in SLOW}
    (tmp_path / "deselect.json").write_text(json.dumps(deselect))
    here = Path(__file__).resolve().parent
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "NT_NUM_GENERATED_CASES": "4",  # neural-tangents' default, pinned: the names above depend on it
        "NTKDEPTH_NT_DESELECT": str(tmp_path / "deselect.json"),
        "NTKDEPTH_NT_REPORT": str(tmp_path / "report.json"),
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(upstream.parent),
         "-p", "nt_upstream_harness", "-p", "no:cacheprovider", "-q", "-W", "ignore",
         "--junitxml", str(tmp_path / "junit.xml"), *(str(upstream / f) for f in FILES)],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert (tmp_path / "report.json").is_file(), f"neural-tangents' tests were not collected:\n{tail}"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["not_found"] == [], f"deselected names that no longer exist: {report['not_found']}"
    missing = sorted(set(REQUIRED) - set(report["selected"]))
    assert not missing, f"required cases not collected: {missing}"

    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    passed, time_s = set(), 0.0
    for suite in ET.parse(tmp_path / "junit.xml").getroot().iter("testsuite"):
        time_s += float(suite.get("time", 0))
    for case in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        if "failure" in kinds:
            counts["failed"] += 1
        elif "error" in kinds:
            counts["error"] += 1
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
            parts = case.get("classname").split(".")
            passed.add(f"{'/'.join(parts[1:-1])}.py::{parts[-1]}::{case.get('name')}")
    line = (
        f"neural-tangents' own tests through the bridge: {counts['passed']} passed, "
        f"{counts['failed']} failed, {counts['error']} errors, {counts['skipped']} skipped by "
        f"neural-tangents, {len(PLACEHOLDER)} deselected (placeholders), {len(SLOW)} deselected "
        f"(slow), of {report['collected']} collected in {len(FILES)} files; {time_s:.0f} s"
    )
    request.node.user_properties.append(("summary", line))
    print(line)
    assert counts["failed"] == 0 and counts["error"] == 0 and proc.returncode == 0, f"{line}\n{tail}"
    assert not set(REQUIRED) - passed, f"required cases did not pass: {sorted(set(REQUIRED) - passed)}"
    assert counts["passed"] >= MIN_PASSED, line
