"""The chart under the real helm v4 binary (installed by tests/tools/install_helm.sh), which, unlike the SDK library
the other chart tests use, runs helm's own dependency checks: the chart in the checkout templates, lints and
installs (--dry-run=client) with no network; impossible value combinations stop `helm template` with a message;
the example jobs run on the values the README names for them; the umbrella chart's Chart.lock is the one helm
expects. Every helm call gets empty home folders and a proxy on a closed local port: nothing reaches the network."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml
from chart_engine import CHART, NAMESPACE, RELEASE, SCENARIOS, render
from chart_validate import kube_schema

from vlmtune.spec import load_jobs
from vlmtune.spec.crd import crd_for, generate_crds
from vlmtune_operator.rayjob import build_rayjob
from vlmtune_operator.runtime import parse_runtime
from vlmtune_operator.tenancy import LocalPathOnCluster, NotATenant

REPO = CHART.parents[1]
STACK = CHART.parent / "vlmtune-stack"
JOB_FILES = sorted((REPO / "jobs").glob("*.yaml"))
EXAMPLES_VALUES = CHART / "ci" / "one-tenant-values.yaml"
"""The values file the README names for the example jobs (namespace team-vision, node pool a100-80gb)."""
LOCAL_EXAMPLES = {"quickstart.yaml", "smoke.yaml", "eval-demo.yaml"}
"""Example jobs that write to ./runs: laptop jobs, refused on a cluster."""


@pytest.fixture
def helm(real_helm, tmp_path):
    """Run the helm binary in an empty, offline environment; returns (exit code, stdout, stderr)."""
    closed = "http://127.0.0.1:9"  # the discard port: any connection attempt fails at once, locally
    env = {
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "HTTP_PROXY": closed,
        "HTTPS_PROXY": closed,
        "http_proxy": closed,
        "https_proxy": closed,
        "NO_PROXY": "",
        "no_proxy": "",
        "PATH": "/usr/bin:/bin",
    }

    def run(*args: str) -> tuple[int, str, str]:
        done = subprocess.run([str(real_helm), *args], env=env, capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout, done.stderr

    return run


def _objects(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _values_args(scenario: str) -> list[str]:
    return ["-f", str(SCENARIOS[scenario])] if SCENARIOS[scenario] else []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_template_renders_the_checkout_offline(helm, scenario):
    code, out, err = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, *_values_args(scenario))
    assert code == 0, err
    objects = {(obj["kind"], obj["metadata"]["name"]) for obj in _objects(out)}
    # The same objects the SDK renders, so the rest of the chart tests speak for the binary too.
    assert objects == {(obj["kind"], obj["metadata"]["name"]) for obj in render(scenario).objects}


def test_helm_install_dry_run_and_lint_need_no_network(helm):
    code, out, err = helm("install", RELEASE, str(CHART), "-n", NAMESPACE, "--dry-run=client")
    assert code == 0, err
    assert "STATUS: pending-install" in out and "kind: Deployment" in out
    code, out, err = helm("lint", "--strict", str(CHART), *_values_args("three-tenants-borrowing"))
    assert code == 0 and "0 chart(s) failed" in out, out + err


TENANT = {"name": "vision", "namespace": "team-vision", "outputPrefix": "s3://runs/team-vision/"}
IMPOSSIBLE = {
    "auth-off-but-policy-requires-it": (
        {"runtime": {"rayAuthMode": "disabled"}},
        "admissionPolicy.requireTokenAuth denies every RayJob",
    ),
    "tenant-queue-is-not-the-default-queue": (
        {"tenants": [TENANT | {"localQueueName": "vision-q"}]},
        'differs from runtime.defaultQueue "tuning"',
    ),
    "tenant-without-storage": (
        {"tenants": [{"name": "vision", "namespace": "team-vision"}]},
        "missing property 'outputPrefix'",
    ),
    "one-tenant-inside-another": (
        {"tenants": [TENANT, TENANT | {"name": "b", "namespace": "b", "outputPrefix": "s3://runs/team-vision/b/"}]},
        "lies inside tenants[0].outputPrefix",
    ),
    "no-tenant": ({"tenants": []}, "tenants: add at least one tenant"),
}


@pytest.mark.parametrize("case", IMPOSSIBLE)
def test_impossible_values_stop_helm_template_with_a_message(helm, case, tmp_path):
    values, words = IMPOSSIBLE[case]
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    code, _, err = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(path))
    assert code != 0 and words in err, err


def test_auth_off_renders_once_the_policy_stops_requiring_it(helm):
    code, _, err = helm(
        "template",
        RELEASE,
        str(CHART),
        "--set",
        "runtime.rayAuthMode=disabled",
        "--set",
        "admissionPolicy.requireTokenAuth=false",
    )
    assert code == 0, err


def _runtime_from(helm, *values: str):
    code, out, err = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, *values)
    assert code == 0, err
    return parse_runtime(next(obj for obj in _objects(out) if obj["kind"] == "ConfigMap"))


def test_example_jobs_run_on_the_values_the_readme_names(helm):
    runtime = _runtime_from(helm, "-f", str(EXAMPLES_VALUES))
    schemas = {crd["spec"]["names"]["kind"]: kube_schema.crd_schema(crd, "v1alpha1") for crd in generate_crds()}
    code, out, _ = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(EXAMPLES_VALUES))
    storage = next(
        obj
        for obj in _objects(out)
        if obj["kind"] == "ValidatingAdmissionPolicy" and obj["metadata"]["name"].startswith(f"{RELEASE}-storage-")
    )
    known = {job.name for job in load_jobs(JOB_FILES)}
    for path in JOB_FILES:
        for job in load_jobs([path], known=known):
            if path.name in LOCAL_EXAMPLES:
                with pytest.raises(LocalPathOnCluster):
                    build_rayjob(job, runtime, _upstream_models(job), "team-vision")
                continue
            defaulted, errors = kube_schema.admit(schemas[job.kind], job.to_doc())
            assert not errors, (path.name, errors)
            assert _allowed(storage, defaulted), path.name
            if job.kind != "Experiment":
                build_rayjob(job, runtime, _upstream_models(job), job.metadata.namespace)


def test_example_jobs_need_that_values_file(helm):
    runtime = _runtime_from(helm)  # the chart's defaults: tenant vlmtune-jobs, node pool gpu
    [stage1] = load_jobs([REPO / "jobs" / "stage1.yaml"])
    with pytest.raises(NotATenant, match="'team-vision' is not a tenant namespace"):
        build_rayjob(stage1, runtime)


def _upstream_models(job) -> dict[str, str]:
    return {name: f"s3://runs/{name}/model" for name in job.upstream_jobs()}


def _allowed(policy: dict, obj: dict) -> bool:
    import celpy

    env = celpy.Environment()
    activation = {"object": celpy.json_to_cel(obj)}
    variables = {}
    for variable in policy["spec"].get("variables", []):
        variables[variable["name"]] = env.program(env.compile(variable["expression"])).evaluate(activation)
    activation["variables"] = (
        celpy.json_to_cel({})
        if not variables
        else celpy.celtypes.MapType({celpy.celtypes.StringType(k): v for k, v in variables.items()})
    )
    return all(
        bool(env.program(env.compile(rule["expression"])).evaluate(activation))
        for rule in policy["spec"]["validations"]
    )


def test_the_umbrella_chart_lock_is_the_one_helm_expects(helm, tmp_path):
    # chart_lock.py computes the digest offline; the binary agrees: `dependency build` passes its lock check and only
    # then stops, before any download, at the remote repositories nobody added (the README's `helm repo add`).
    check = subprocess.run(
        [sys.executable, str(REPO / "tests" / "tools" / "chart_lock.py"), "--check", str(STACK)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    copy = tmp_path / "charts"
    shutil.copytree(CHART, copy / "vlmtune")
    shutil.copytree(STACK, copy / "vlmtune-stack")
    code, _, err = helm("dependency", "build", str(copy / "vlmtune-stack"))
    assert code != 0 and "no repository definition for https://ray-project.github.io/kuberay-helm/" in err, err
    # The check bites: another pinned version makes the committed lock stale for helm too.
    chart_yaml = copy / "vlmtune-stack" / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("version: 1.7.0", "version: 1.6.0"))
    code, _, err = helm("dependency", "build", str(copy / "vlmtune-stack"))
    assert code != 0 and "out of sync" in err, err


def test_crds_install_from_the_chart(helm):
    code, out, err = helm("show", "crds", str(CHART))
    assert code == 0, err
    shipped = {obj["spec"]["names"]["kind"]: obj for obj in _objects(out)}
    assert shipped == {kind: crd_for(kind, model) for kind, model in _kinds().items()}


def _kinds():
    from vlmtune.spec import KINDS

    return KINDS


def test_the_umbrella_passes_its_vlmtune_values_through(helm, tmp_path):
    # Only the file:// dependency can be fetched offline: with the two remote ones left out, the umbrella vendors
    # charts/vlmtune and renders it with the values under `vlmtune:`.
    copy = tmp_path / "charts"
    shutil.copytree(CHART, copy / "vlmtune")
    shutil.copytree(STACK, copy / "vlmtune-stack")
    chart_yaml = copy / "vlmtune-stack" / "Chart.yaml"
    metadata = yaml.safe_load(chart_yaml.read_text())
    metadata["dependencies"] = [d for d in metadata["dependencies"] if d["repository"].startswith("file://")]
    chart_yaml.write_text(yaml.safe_dump(metadata, sort_keys=False))
    (copy / "vlmtune-stack" / "Chart.lock").unlink()
    code, _, err = helm("dependency", "build", str(copy / "vlmtune-stack"))
    assert code == 0, err
    values = tmp_path / "stack-values.yaml"
    values.write_text(yaml.safe_dump({"vlmtune": yaml.safe_load(EXAMPLES_VALUES.read_text())}))
    code, out, err = helm("template", RELEASE, str(copy / "vlmtune-stack"), "-n", NAMESPACE, "-f", str(values))
    assert code == 0, err
    objects = {(obj["kind"], obj["metadata"]["name"]) for obj in _objects(out)}
    assert objects == {(obj["kind"], obj["metadata"]["name"]) for obj in render("one-tenant").objects}
