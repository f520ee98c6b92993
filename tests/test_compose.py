"""The deployment files agree with the code they run: docker-compose.yml, the Dockerfile, .env.example,
deploy/ and the commands of docs/operations.md.

Nothing here needs Docker. The compose file is checked against the Compose Specification's JSON schema, then every
command, ICPFLOW_* variable and search attribute it names is checked against the project itself, so a typo, a
renamed setting or a forgotten search attribute fails here rather than in a container. The checkers are strict on
purpose, and the ``test_checker_refuses_…`` tests prove it with bogus input.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
from pydantic import SecretStr
from ruamel.yaml import YAML

from models import search
from models.settings import Settings
from starter.api.config import ApiSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
OPERATIONS = ROOT / "docs" / "operations.md"
SEARCH_ATTRIBUTE_SCRIPT = ROOT / "deploy" / "temporal" / "register-search-attributes.sh"

PREFIX = "ICPFLOW_"
# Settings whose default only works on a developer's machine (a loopback service, a development secret) or that
# every process of a deployment must share (the codec keys, or each container invents its own): the worker and
# the API must get them from the compose file. Fields with a loopback, SQLite, relative-path or secret default are
# added to this list automatically (see unsafe_fields).
MUST_BE_SET = {
    "database_url",
    "temporal_address",
    "temporal_namespace",
    "regulator_url",
    "regulator_api_key",
    "smtp_host",
    "smtp_port",
    "twilio_account_sid",
    "twilio_auth_token",
    "twilio_base_url",
    "rdap_base_url",
    "face_verification_url",
    "codec_keys",
    "codec_active_key",
}
API_MUST_BE_SET = {"api_tokens"}
# Values for the secrets that .env.example leaves empty, shaped like real ones where the settings parse them.
DUMMY_SECRETS = {
    "ICPFLOW_API_TOKENS": json.dumps({"support-wang": {"role": "support", "sha256": "0" * 64}}),
    "ICPFLOW_CODEC_KEYS": json.dumps({"k1": "A" * 43 + "="}),
    "ICPFLOW_CODEC_ACTIVE_KEY": "k1",
}
SECRET_NAME = re.compile(r"(PASSWORD|TOKENS?|SECRET|API_KEY|CODEC_KEYS|ACCOUNT_SID)$")
ONE_SHOT_JOBS = {"temporal-schema", "temporal-search-attributes", "migrations"}


# ================================================================================================= reading files


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


@functools.cache
def compose() -> dict[str, Any]:
    """docker-compose.yml as compose reads it (YAML anchors and merge keys resolved). Tests must not change it."""
    loaded: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def icpflow_services() -> dict[str, dict[str, Any]]:
    """The services that run the project's own image (they are built from the Dockerfile)."""
    return {name: svc for name, svc in services().items() if "build" in svc}


def env_example() -> dict[str, str | None]:
    """Every variable .env.example lists, with its value; a commented-out ``# NAME=`` counts as listed, unset
    (``None``)."""
    listed: dict[str, str | None] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            listed[match.group(2)] = None if match.group(1) else match.group(3)
    return listed


def project_scripts() -> dict[str, str]:
    scripts: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    return scripts


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of every Dockerfile line, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            for token in shlex.split(rest):
                name, _, value = token.partition("=")
                env[name] = value
    return env


# ============================================================================================ compose interpolation

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $.
INTERPOLATION = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?)(?P<arg>[^}]*))?\})")


class MissingVariable(LookupError):
    pass


def interpolations(text: str) -> Iterator[re.Match[str]]:
    for match in INTERPOLATION.finditer(text):
        if match.group("name"):
            yield match


def stray_dollars(text: str) -> list[str]:
    """Every ``$`` that is neither ``$$`` nor a well-formed ``${…}``: compose would reject or mangle it."""
    cleaned = INTERPOLATION.sub("", text)
    return [cleaned[max(0, i - 20) : i + 20] for i, char in enumerate(cleaned) if char == "$"]


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of ``text`` with the variables ``env`` (unset variables are absent from it)."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        if name is None:
            return "$"
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return INTERPOLATION.sub(replace, text)


def interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolated(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    return node


def example_environment() -> dict[str, str]:
    """.env.example as an operator fills it in: every empty value gets a dummy of the right shape; what is
    commented out stays unset."""
    return {
        name: value or DUMMY_SECRETS.get(name, "dummy-secret")
        for name, value in env_example().items()
        if value is not None
    }


def service_environment(service: Mapping[str, Any]) -> dict[str, str | None]:
    """A service's ``environment`` as a mapping (``None``: passed through from the caller's environment)."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = [item.split("=", 1) for item in environment]
        return {pair[0]: (pair[1] if len(pair) == 2 else None) for pair in pairs}
    return {key: (None if value is None else str(value)) for key, value in environment.items()}


def resolved_environment(name: str) -> dict[str, str]:
    """What the container of service ``name`` gets with .env.example filled in (pass-through variables left out)."""
    raw = service_environment(services()[name])
    env = example_environment()
    return {key: interpolate(value, env) for key, value in raw.items() if value is not None}


# ================================================================================================ command checks


class NotACommand(AssertionError):
    pass


def check_command(argv: list[str], *, check_values: bool = True) -> None:
    """Raise :class:`NotACommand` unless ``argv`` runs something this project provides: an ``icpflow`` command with
    options it has, a console script of pyproject.toml, ``python -m`` a module that imports (with options its
    ``--help`` lists) or ``python -c`` code that compiles."""
    if not argv:
        raise NotACommand("empty command")
    program, args = argv[0], list(argv[1:])
    if program == "icpflow":
        check_icpflow(args, check_values=check_values)
    elif program in project_scripts():
        check_console_script(program)
    elif program in ("python", "python3"):
        check_python(args)
    else:
        raise NotACommand(f"{program!r} is neither icpflow, a console script of pyproject.toml nor python")


def icpflow_command() -> Any:
    """The click command behind ``icpflow`` (typer builds it; recent typer ships its own copy of click, so the
    checks below go by what a command can do, not by click's classes)."""
    from starter.cli import app

    return typer.main.get_command(app)


def check_icpflow(args: list[str], *, check_values: bool = True) -> None:
    command = icpflow_command()
    context = command.context_class(command, info_name="icpflow")
    path = ["icpflow"]
    while hasattr(command, "list_commands"):  # a group: the next word names a sub-command
        commands = sorted(command.list_commands(context))
        if not args or args[0].startswith("-"):
            raise NotACommand(f"`{' '.join(path)}` needs a sub-command: {commands}")
        name, args = args[0], args[1:]
        sub = command.get_command(context, name)
        if sub is None:
            raise NotACommand(f"`{' '.join(path)} {name}` does not exist; `{' '.join(path)}` has {commands}")
        path.append(name)
        command = sub
        context = command.context_class(command, info_name=name, parent=context)
    if check_values:
        try:
            command.make_context(path[-1], list(args), parent=context.parent)
        except Exception as e:  # click's UsageError / BadParameter, from whichever click typer uses
            if not hasattr(e, "format_message"):
                raise
            raise NotACommand(f"`{' '.join(path)}` refuses {args}: {e.format_message()}") from None
        return
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for token in args:
        option = token.split("=", 1)[0]
        if option.startswith("-") and option != "-" and option not in known:
            raise NotACommand(f"`{' '.join(path)}` has no option {option}; it has {sorted(known)}")


def check_console_script(name: str) -> None:
    target = project_scripts()[name]
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    if not callable(getattr(module, attribute, None)):
        raise NotACommand(f"console script {name} = {target}: {module_name} has no callable {attribute}")


def check_python(args: list[str]) -> None:
    if len(args) >= 2 and args[0] == "-c":
        try:
            compile(args[1], "<python -c>", "exec")
        except SyntaxError as e:
            raise NotACommand(f"python -c code does not compile: {e}") from None
        return
    if len(args) < 2 or args[0] != "-m":
        raise NotACommand(f"python {args}: expected -m MODULE or -c CODE")
    module_name, options = args[1], args[2:]
    try:
        spec = importlib.util.find_spec(module_name)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        raise NotACommand(f"python -m {module_name}: no such module")
    runnable = f"{module_name}.__main__" if spec.submodule_search_locations is not None else module_name
    try:
        importlib.import_module(runnable)
    except ImportError as e:
        raise NotACommand(f"python -m {module_name}: {runnable} does not import ({e})") from None
    wanted = [o.split("=", 1)[0] for o in options if o.startswith("--")]
    if wanted:
        returncode, shown = module_help(module_name)
        missing = [o for o in wanted if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", shown)]
        if returncode != 0 or missing:
            raise NotACommand(f"python -m {module_name} has no option {missing} (--help: {shown[:400]!r})")


@functools.cache
def module_help(module_name: str) -> tuple[int, str]:
    """``python -m MODULE --help``: its exit status and output (argparse lists every option there)."""
    shown = subprocess.run(
        [sys.executable, "-m", module_name, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    return shown.returncode, shown.stdout


def compose_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every command the compose file runs in the icpflow image, interpolated with .env.example."""
    env = example_environment()
    found: list[tuple[str, list[str]]] = []
    for name, service in icpflow_services().items():
        for key in ("entrypoint", "command"):
            value = service.get(key)
            if value is not None:
                argv = value if isinstance(value, list) else shlex.split(value)
                found.append((f"compose {name} {key}", [interpolate(str(a), env) for a in argv]))
        test = (service.get("healthcheck") or {}).get("test")
        if isinstance(test, list) and test and test[0] == "CMD":
            found.append((f"compose {name} healthcheck", [str(a) for a in test[1:]]))
    return found


def dockerfile_commands() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "HEALTHCHECK" and rest.upper() != "NONE":
            rest = rest[rest.index("CMD ") + len("CMD ") :]
            keyword = "HEALTHCHECK CMD"
        if keyword in ("CMD", "ENTRYPOINT", "HEALTHCHECK CMD"):
            argv = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
            found.append((f"Dockerfile {keyword}", argv))
    return found


# Options of `docker run` / `docker compose run|exec` that take a value (the next word is not the service).
DOCKER_VALUE_OPTIONS = {
    "-v",
    "--volume",
    "-e",
    "--env",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--name",
    "--entrypoint",
    "--network",
    "-p",
    "--publish",
    "--env-file",
    "--index",
}
SHELL_OPERATORS = {"|", "&&", ";", "||", ">", ">>", "2>&1"}


def command_of_line(tokens: list[str]) -> list[str] | None:
    """The command a shell line runs in the project's image: the line itself, or what follows the service or image
    of ``docker compose exec|run`` / ``docker run``. ``None`` when it runs something else (psql, pg_dump …)."""
    if tokens[:3] in (["docker", "compose", "exec"], ["docker", "compose", "run"]) or tokens[:2] == ["docker", "run"]:
        rest = tokens[3:] if tokens[1] == "compose" else tokens[2:]
        while rest and rest[0].startswith("-"):
            option, rest = rest[0], rest[1:]
            if option in DOCKER_VALUE_OPTIONS and rest:
                rest = rest[1:]
        tokens = rest[1:]  # past the service or image
    command: list[str] = []
    for token in tokens:
        if token in SHELL_OPERATORS:
            break
        command.append(token)
    if command[:1] == ["icpflow"] or command[:2] in (["python", "-m"], ["python3", "-m"]):
        return command
    return None


def documented_commands() -> list[tuple[str, list[str]]]:
    """``icpflow …`` and ``python -m …`` invocations in the code blocks of docs/operations.md, run directly or in a
    container (``docker compose exec api icpflow …``)."""
    found: list[tuple[str, list[str]]] = []
    in_block = False
    pending = ""
    for number, line in enumerate(OPERATIONS.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip().startswith("```"):
            in_block, pending = not in_block, ""
            continue
        if not in_block:
            continue
        text = pending + line.split(" #", 1)[0]
        if text.rstrip().endswith("\\"):
            pending = text.rstrip()[:-1] + " "
            continue
        pending = ""
        try:
            tokens = shlex.split(text)
        except ValueError:
            continue
        command = command_of_line(tokens) if tokens else None
        if command:
            found.append((f"docs/operations.md:{number}", command))
    for number, line in enumerate(OPERATIONS.read_text(encoding="utf-8").splitlines(), start=1):
        for span in re.findall(r"`([^`]+)`", line):
            command = command_of_line(shlex.split(span))
            if command:
                found.append((f"docs/operations.md:{number}", command))
    return found


# ========================================================================================================= tests


def test_compose_file_matches_the_compose_specification() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    assert checker.exists(), "check-jsonschema is part of the dev extra: pip install -e '.[dev]'"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "argv", [pytest.param(argv, id=where) for where, argv in compose_commands() + dockerfile_commands()]
)
def test_every_command_of_the_deployment_exists_in_the_project(argv: list[str]) -> None:
    check_command(argv)


def test_the_deployment_runs_each_role_of_the_image() -> None:
    commands = [argv for _, argv in compose_commands()]
    for role in (
        ["icpflow", "worker"],
        ["icpflow", "api"],
        ["icpflow", "db", "upgrade"],
        ["python", "-m", "simulators"],
    ):
        assert any(argv[: len(role)] == role for argv in commands), f"no service runs {' '.join(role)}"


def test_every_documented_command_exists() -> None:
    commands = documented_commands()
    assert any(argv[:1] == ["icpflow"] for _, argv in commands), "docs/operations.md shows no icpflow command"
    problems = []
    for where, argv in commands:
        try:
            check_command(argv, check_values=False)
        except NotACommand as e:
            problems.append(f"{where}: {e}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "argv",
    [
        ["icpflow", "orders", "frobnicate"],
        ["icpflow", "wroker"],
        ["icpflow", "db"],
        ["icpflow", "api", "--hots", "0.0.0.0"],
        ["icpflow", "api", "--port", "eighty"],
        ["icpflow-wroker"],
        ["python", "-m", "simulatorz"],
        ["python", "-m", "simulators", "--time-warp", "2"],
        ["python", "-c", "import ("],
        ["gunicorn", "starter.api:app"],
    ],
)
def test_checker_refuses_a_bogus_command(argv: list[str]) -> None:
    with pytest.raises(NotACommand):
        check_command(argv)


def unknown_variables(names: set[str], settings_class: type[Settings]) -> list[str]:
    """The ``ICPFLOW_*`` names among ``names`` that are no field of ``settings_class`` (pydantic-settings would
    silently ignore them: ``extra="ignore"``)."""
    fields = set(settings_class.model_fields)
    return sorted(n for n in names if n.startswith(PREFIX) and n[len(PREFIX) :].lower() not in fields)


def test_every_icpflow_variable_of_the_deployment_is_a_setting() -> None:
    problems: dict[str, list[str]] = {}
    for name, service in services().items():
        settings_class = ApiSettings if name == "api" else Settings
        problems[f"compose {name}"] = unknown_variables(set(service_environment(service)), settings_class)
    problems["Dockerfile ENV"] = unknown_variables(set(dockerfile_env()), Settings)
    problems[".env.example"] = unknown_variables(set(env_example()), ApiSettings)
    problems = {where: names for where, names in problems.items() if names}
    assert not problems, f"ICPFLOW_* variables that are no setting (models/settings.py): {problems}"


def test_checker_refuses_a_bogus_variable() -> None:
    assert unknown_variables({"ICPFLOW_REGULATR_URL", "ICPFLOW_SMTP_HOST", "OTHER"}, Settings) == [
        "ICPFLOW_REGULATR_URL"
    ]
    assert unknown_variables({"ICPFLOW_API_TOKENS"}, Settings) == ["ICPFLOW_API_TOKENS"]


def unsafe_default(default: Any) -> bool:
    """A loopback address, SQLite, a path relative to wherever the process starts, or a development secret."""
    if isinstance(default, SecretStr):
        return True
    if isinstance(default, Path):
        return not default.is_absolute()
    return isinstance(default, str) and re.search(r"127\.0\.0\.1|localhost|sqlite", default) is not None


def unsafe_fields(settings_class: type[Settings]) -> set[str]:
    """Fields whose default would be wrong in a deployment."""
    return {name for name, field in settings_class.model_fields.items() if unsafe_default(field.default)}


@pytest.mark.parametrize("service", ["worker", "api"])
def test_settings_without_a_safe_default_are_set_for_the_long_running_services(service: str) -> None:
    settings_class = ApiSettings if service == "api" else Settings
    required = MUST_BE_SET | unsafe_fields(settings_class) | (API_MUST_BE_SET if service == "api" else set())
    given = set(service_environment(services()[service])) | set(dockerfile_env())
    missing = sorted(f for f in required if f"{PREFIX}{f.upper()}" not in given)
    assert not missing, f"{service} leaves these settings at their local defaults: {missing}"


def test_the_migrations_job_gets_the_same_database_as_the_worker() -> None:
    assert (
        resolved_environment("migrations")["ICPFLOW_DATABASE_URL"]
        == resolved_environment("worker")["ICPFLOW_DATABASE_URL"]
    )
    assert resolved_environment("worker")["ICPFLOW_DATABASE_URL"].startswith("postgresql+asyncpg://")


@pytest.mark.parametrize("service", ["worker", "api", "migrations", "simulators"])
def test_the_environment_of_each_service_parses_as_settings(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)
    for name, value in {**dockerfile_env(), **resolved_environment(service)}.items():
        if name.startswith(PREFIX):
            monkeypatch.setenv(name, value)
    if service == "api":
        assert ApiSettings().api_tokens, "the API must not fall back to the development tokens"
    else:
        assert Settings().temporal_address  # parsed without a validation error


def test_the_app_points_at_the_stand_ins_of_the_same_stack() -> None:
    app, stand_ins = resolved_environment("worker"), resolved_environment("simulators")
    for name in ("ICPFLOW_REGULATOR_URL", "ICPFLOW_RDAP_BASE_URL", "ICPFLOW_FACE_VERIFICATION_URL"):
        target = urlsplit(app[name])
        assert target.hostname == "simulators", f"{name} = {app[name]}"
        assert target.port == urlsplit(stand_ins[name]).port, f"{name}: the simulators listen elsewhere"
    sms = urlsplit(app["ICPFLOW_TWILIO_BASE_URL"])
    assert (sms.hostname, sms.port) == ("simulators", urlsplit(stand_ins["ICPFLOW_TWILIO_BASE_URL"]).port)
    for shared in ("ICPFLOW_REGULATOR_API_KEY", "ICPFLOW_TWILIO_ACCOUNT_SID", "ICPFLOW_TWILIO_AUTH_TOKEN"):
        assert app[shared] == stand_ins[shared], f"{shared} differs between the worker and the simulators"
    assert (app["ICPFLOW_SMTP_HOST"], app["ICPFLOW_SMTP_PORT"]) == ("mailpit", "1025")
    assert "mailpit" in services()


def test_the_worker_and_the_api_share_temporal_codec_keys_and_database() -> None:
    worker, api = resolved_environment("worker"), resolved_environment("api")
    for name in set(worker) | set(api):
        if name != "ICPFLOW_API_TOKENS":
            assert worker.get(name) == api.get(name), f"{name} differs between the worker and the API"


def registered_search_attributes() -> dict[str, str]:
    text = SEARCH_ATTRIBUTE_SCRIPT.read_text(encoding="utf-8")
    block = re.search(r"^ATTRIBUTES=\((.*?)^\)", text, re.MULTILINE | re.DOTALL)
    assert block, f"{SEARCH_ATTRIBUTE_SCRIPT.name} has no ATTRIBUTES=( … ) list"
    pairs = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return dict(pair.split("=", 1) for pair in pairs if pair)


def test_the_one_shot_step_registers_every_search_attribute_of_the_order() -> None:
    expected = {key.name: key.indexed_value_type.name for key in search.ALL}
    registered = {name: kind.upper() for name, kind in registered_search_attributes().items()}
    assert registered == expected, "deploy/temporal/register-search-attributes.sh and models/search.py differ"
    script = SEARCH_ATTRIBUTE_SCRIPT.read_text(encoding="utf-8")
    assert "operator search-attribute create" in script and '--type "$type"' in script

    job = services()["temporal-search-attributes"]
    assert job["entrypoint"][-1] == "/deploy/register-search-attributes.sh"
    assert f"./{SEARCH_ATTRIBUTE_SCRIPT.relative_to(ROOT)}:/deploy/register-search-attributes.sh:ro" in job["volumes"]
    for dependant in ("worker", "api"):
        condition = services()[dependant]["depends_on"]["temporal-search-attributes"]["condition"]
        assert condition == "service_completed_successfully"


def test_env_example_lists_every_variable_the_compose_file_reads() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    interpolated_names = {m.group("name") for m in interpolations(text)}
    passed_through = {
        name for service in services().values() for name, value in service_environment(service).items() if value is None
    }
    listed = set(env_example())
    assert not (interpolated_names | passed_through) - listed, "missing from .env.example"
    unused = {n for n in listed - interpolated_names - passed_through if not n.startswith("COMPOSE_")}
    assert not unused, f".env.example lists variables docker-compose.yml never reads: {sorted(unused)}"


def test_secrets_have_no_default_anywhere() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for match in interpolations(text):
        if SECRET_NAME.search(match.group("name")):
            assert match.group("op") == ":?", f"{match.group(0)}: a secret must be required, never defaulted"
    for name, value in env_example().items():
        if SECRET_NAME.search(name):
            assert not value, f".env.example gives the secret {name} a value"
    for name in (*dockerfile_env(), *(rest.split("=")[0] for kw, rest in dockerfile_instructions() if kw == "ARG")):
        assert not SECRET_NAME.search(name), f"the Dockerfile bakes in {name}"


def test_every_interpolation_is_well_formed_and_resolves_from_env_example() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert not stray_dollars(text), f"a lone $ (write $$ for a literal one): {stray_dollars(text)}"
    interpolated(compose(), example_environment())  # raises MissingVariable when something is not listed
    without_secret = {k: v for k, v in example_environment().items() if k != "APP_DB_PASSWORD"}
    with pytest.raises(MissingVariable, match="APP_DB_PASSWORD"):
        interpolated(compose(), without_secret)


def healthchecked(service: Mapping[str, Any]) -> bool:
    """Whether ``service`` has a health check that runs: its own, or for the icpflow image the Dockerfile's."""
    healthcheck = service.get("healthcheck")
    if healthcheck is not None:
        return not healthcheck.get("disable", False) and healthcheck.get("test") not in (["NONE"], "NONE")
    if "build" in service:  # the image's own HEALTHCHECK
        return any(keyword == "HEALTHCHECK" and rest != "NONE" for keyword, rest in dockerfile_instructions())
    return False


def test_start_order_waits_for_health_and_for_the_one_shot_jobs() -> None:
    all_services = services()
    for name, service in all_services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions, not a bare list"
        for target, rule in depends_on.items():
            assert target in all_services, f"{name} depends on unknown service {target}"
            condition = rule["condition"]
            if target in ONE_SHOT_JOBS:
                assert condition == "service_completed_successfully", f"{name} -> {target}"
            else:
                assert condition == "service_healthy", f"{name} -> {target}"
                assert healthchecked(all_services[target]), f"{name} waits for {target}, which has no check"
    for job in ONE_SHOT_JOBS:
        assert all_services[job].get("restart") == "no", f"{job} is a one-shot job"
    for dependant in ("worker", "api"):
        assert set(all_services[dependant]["depends_on"]) >= {"temporal", "temporal-search-attributes", "migrations"}
    assert all_services["temporal"]["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"


def test_workers_scale_out() -> None:
    worker = services()["worker"]
    assert "container_name" not in worker, "a fixed container name stops `--scale worker=3`"
    assert "ports" not in worker, "a fixed host port stops `--scale worker=3`"


def test_images_are_pinned_and_temporal_moves_as_one() -> None:
    images = {name: svc["image"] for name, svc in services().items() if "build" not in svc}
    for name, image in images.items():
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and "$" not in image, f"{name}: pin {image}"
    server_tag = images["temporal"].rpartition(":")[2]
    for job in ("temporal-schema", "temporal-search-attributes"):
        assert images[job].startswith(f"temporalio/admin-tools:{server_tag}-"), (
            f"{job} runs {images[job]}, the server is {server_tag}: upgrade them together"
        )


def test_every_bind_mount_exists_and_the_dynamic_config_is_mounted() -> None:
    mounted: dict[str, Path] = {}
    for name, service in services().items():
        for volume in service.get("volumes") or []:
            source, _, rest = str(volume).partition(":")
            if source.startswith("."):
                path = (ROOT / source).resolve()
                assert path.exists(), f"{name} mounts {source}, which does not exist"
                mounted[rest.split(":")[0]] = path
    config_path = services()["temporal"]["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    folder, _, file_name = config_path.rpartition("/")
    assert folder in mounted, f"DYNAMIC_CONFIG_FILE_PATH {config_path} is not in a mounted folder"
    config = load_yaml(mounted[folder] / file_name)
    assert isinstance(config, dict) and config
    for key, constrained_values in config.items():
        assert all("value" in entry for entry in constrained_values), f"{key}: each entry needs a value"


def test_the_image_runs_unprivileged_without_dev_dependencies() -> None:
    instructions = dockerfile_instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "a multi-stage build: builder and runtime"
    arguments = {
        rest.split("=", 1)[0]: rest.split("=", 1)[1] for kw, rest in instructions if kw == "ARG" and "=" in rest
    }
    runtime_base = interpolate(stages[-1].split()[0], arguments)
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", runtime_base), runtime_base
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "the runtime must not run as root"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "[dev]" not in text and "optional-dependencies" not in text, "dev dependencies must stay out of the image"
    assert any(keyword == "HEALTHCHECK" for keyword, _ in instructions)
