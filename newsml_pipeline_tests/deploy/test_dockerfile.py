"""deploy/Dockerfile (Docker cannot run here): what it copies exists, both variants install the
pinned torch, and what it starts is a command the dagster CLI accepts for a module that exists."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import shlex
import tomllib
from importlib.metadata import distribution, version

from packaging.requirements import Requirement

from newsml_pipeline_tests.deploy.manifests import DEPLOY, K8S, REPO, by_kind, cli_params, rendered_documents

DOCKERFILE = DEPLOY / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _torch_pin() -> str:
    (req,) = [Requirement(r) for r in PYPROJECT["project"]["dependencies"] if r.startswith("torch")]
    (spec,) = req.specifier
    assert spec.operator == "=="
    return spec.version


def test_copy_sources_exist_and_are_not_ignored() -> None:
    ignored = [
        p.strip()
        for p in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if p.strip()[:1] not in "#"
    ]
    copies = [shlex.split(args) for op, args in _instructions() if op == "COPY"]
    assert copies
    for args in copies:
        assert not any(a.startswith("--from") for a in args)
        for src in args[:-1]:
            assert (REPO / src).exists(), src  # the build context is the repo root
            assert not any(fnmatch.fnmatch(src, pat.removeprefix("**/")) for pat in ignored), src
    copied = {src for args in copies for src in args[:-1]}
    assert {"pyproject.toml", "newsml_pipeline"} <= copied
    # README.md is the package's readme (pyproject): building the wheel needs it.
    assert PYPROJECT["project"]["readme"] in copied


def test_both_variants_install_the_pinned_torch_from_their_index() -> None:
    ins = _instructions()
    stages = {
        m.group(1): i for i, (op, a) in enumerate(ins) if op == "FROM" and (m := re.search(r" AS (\S+)$", a))
    }
    assert {"torch-cpu", "torch-cuda", "final"} <= set(stages)
    default = next(
        a for op, a in ins[: min(stages.values())] if op == "ARG" and a.startswith("TORCH_VARIANT=")
    )
    assert default == "TORCH_VARIANT=cpu"
    assert ins[stages["final"]][1].startswith("torch-${TORCH_VARIANT} ")
    pin = _torch_pin()
    for stage, index in (("torch-cpu", "/whl/cpu"), ("torch-cuda", "/whl/cu")):
        run = ins[stages[stage] + 1]
        assert run[0] == "RUN" and f"torch=={pin}" in run[1] and index in run[1], run


def test_the_image_installs_the_scale_extra_and_starts_the_code_server() -> None:
    ins = _instructions()
    assert any(op == "RUN" and '".[scale]"' in a for op, a in ins)
    assert "scale" in PYPROJECT["project"]["optional-dependencies"]
    (cmd,) = [json.loads(a) for op, a in ins if op == "CMD"]
    params = cli_params(cmd)
    assert importlib.util.find_spec(params["module_name"]) is not None
    # It is the command the user-code Deployment runs, under the user the manifests expect.
    user_code = by_kind(rendered_documents(), "Deployment")["newsml-user-code"]["spec"]["template"]["spec"]
    c = user_code["containers"][0]
    assert cli_params([*c["command"], *c["args"]])["module_name"] == params["module_name"]
    (user,) = [a for op, a in ins if op == "USER"]
    assert int(user) == user_code["securityContext"]["runAsUser"]
    env = dict(kv.split("=", 1) for op, a in ins if op == "ENV" for kv in shlex.split(a))
    launcher = (K8S / "dagster.k8s.yaml").read_text()
    assert f"dagster_home: {env['DAGSTER_HOME']}" in launcher


def test_scale_libraries_belong_to_the_installed_dagster() -> None:
    dagster_version = version("dagster")
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "newsml_pipeline[scale]" in extras["dev"]
    for req in map(Requirement, extras["scale"]):
        if not req.name.startswith("dagster"):
            continue
        pins = [Requirement(r) for r in distribution(req.name).requires or [] if r.startswith("dagster")]
        dagster_pin = next(r for r in pins if r.name == "dagster")
        # dagster libraries pin the exact dagster release they were built with.
        assert dagster_pin.specifier.contains(dagster_version), (req.name, str(dagster_pin), dagster_version)
